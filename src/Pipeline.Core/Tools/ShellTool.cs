using System.Diagnostics;
using System.Text;
using Pipeline.Commands;
using Pipeline.Dispatch;

namespace Pipeline.Tools;

/// <summary>
/// <c>shell</c>: runs a process (no shell interpretation). Input: <c>command</c> (the program,
/// required), <c>args</c> (array of strings), <c>cwd</c>, <c>env</c> (object of strings),
/// <c>timeout_ms</c> (default 60000). The result is <c>{"exit_code", "stdout", "stderr"}</c>;
/// a non-zero exit code is a failure. On timeout or cancellation the process tree is killed.
/// Registered only when enabled, because it runs arbitrary programs on this machine.
/// </summary>
public sealed class ShellTool : ITool
{
    private const int MaxOutputCharacters = 64 * 1024;
    private static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(60);

    /// <inheritdoc/>
    public string Kind => "shell";

    /// <inheritdoc/>
    public async ValueTask<ToolResult> InvokeAsync(Command command, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(command);
        var input = ToolInput.RequireObject(Kind, command.Input);
        var program = ToolInput.RequireString(Kind, input, "command");
        var timeoutMs = ToolInput.OptionalNonNegativeInteger(Kind, input, "timeout_ms");
        var timeout = timeoutMs is { } ms ? TimeSpan.FromMilliseconds(ms) : DefaultTimeout;

        var startInfo = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = ToolInput.OptionalString(Kind, input, "cwd") ?? string.Empty,
        };
        foreach (var arg in ToolInput.OptionalStringArray(Kind, input, "args"))
        {
            startInfo.ArgumentList.Add(arg);
        }

        foreach (var (name, value) in ToolInput.OptionalStringMap(Kind, input, "env"))
        {
            startInfo.Environment[name] = value;
        }

        using var process = new Process { StartInfo = startInfo };
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return ToolResult.Failure($"shell: cannot start '{program}': {ex.Message}");
        }

        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);

        using var timeoutCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeoutCts.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(timeoutCts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            if (cancellationToken.IsCancellationRequested)
            {
                throw;
            }

            return ToolResult.Failure($"shell: '{program}' timed out after {timeout.TotalMilliseconds:0} ms and was killed.", transient: true);
        }

        var (exitCode, output, error) = (process.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false));
        var result = JsonResult.Build((exitCode, output, error), static (w, s) =>
        {
            w.WriteStartObject();
            w.WriteNumber("exit_code", s.exitCode);
            w.WriteString("stdout", JsonResult.Truncate(s.output, MaxOutputCharacters));
            w.WriteString("stderr", JsonResult.Truncate(s.error, MaxOutputCharacters));
            w.WriteEndObject();
        });
        return exitCode == 0
            ? ToolResult.Success(result)
            : ToolResult.Failure(BuildExitMessage(program, exitCode, error), transient: false, result);
    }

    private static string BuildExitMessage(string program, int exitCode, string stderr)
    {
        var message = new StringBuilder($"shell: '{program}' exited with code {exitCode}");
        var firstLine = stderr.AsSpan().Trim();
        if (!firstLine.IsEmpty)
        {
            var end = firstLine.IndexOfAny('\r', '\n');
            message.Append(": ").Append(end < 0 ? firstLine : firstLine[..end]);
        }

        return message.Append('.').ToString();
    }
}
