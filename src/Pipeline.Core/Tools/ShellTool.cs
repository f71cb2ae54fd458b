using System.ComponentModel;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Pipeline.Commands;
using Pipeline.Dispatch;

namespace Pipeline.Tools;

/// <summary>
/// <c>shell</c>: runs a process (no shell interpretation). Input: <c>command</c> (the program,
/// required), <c>args</c> (array of strings), <c>cwd</c>, <c>env</c> (object of strings),
/// <c>timeout_ms</c> (default 60000, at most <see cref="int.MaxValue"/>), <c>max_output_bytes</c>
/// (1 to the run's <see cref="BuiltInToolOptions.MaxOutputBytes"/>, which is the default).
/// The result is <c>{"exit_code", "stdout", "stderr", "truncated", "stdout_bytes", "stderr_bytes"}</c>:
/// each stream keeps at most the output limit (more is read and discarded, so the process still
/// runs to its end), <c>truncated</c> says whether either lost bytes, and the byte counts are
/// what the process wrote. A non-zero exit code is a failure.
/// <para>
/// The timeout covers the whole run: the process exiting <em>and</em> its output closing (a
/// background child that keeps stdout open keeps the run going). On timeout the result is a
/// transient failure, never a success. On Linux the process leads its own session and process
/// group (through setsid(1)); on timeout or cancellation the group is killed (a double-forked
/// child included), and after a normal end whatever is left in the group is killed too: nothing a
/// command started outlives it. A child that starts a session of its own escapes the group (and
/// is killed only while its parent lives). Without setsid (Windows, macOS) the process tree is
/// killed on timeout, and a normal end leaves background children alone.
/// </para>
/// Registered only when enabled, because it runs arbitrary programs on this machine.
/// </summary>
public sealed class ShellTool : ITool
{
    private static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(60);
    private readonly int _maxOutputBytes;
    private readonly string? _setsidPath;

    /// <summary>Creates the tool with the default output limit (64 KiB per stream).</summary>
    public ShellTool()
        : this(BuiltInToolOptions.DefaultMaxOutputBytes)
    {
    }

    /// <summary>Creates the tool with an output limit per stream from 1 to <see cref="BuiltInToolOptions.HardMaxOutputBytes"/>.</summary>
    public ShellTool(int maxOutputBytes)
        : this(maxOutputBytes, ProcessGroup.SetsidPath)
    {
    }

    /// <summary>Creates the tool; a null <paramref name="setsidPath"/> runs without a process group (as where there is no setsid).</summary>
    internal ShellTool(int maxOutputBytes, string? setsidPath)
    {
        _maxOutputBytes = BuiltInToolOptions.ValidateMaxOutputBytes(maxOutputBytes, nameof(maxOutputBytes));
        _setsidPath = setsidPath;
    }

    /// <inheritdoc/>
    public string Kind => "shell";

    /// <inheritdoc/>
    public async ValueTask<ToolResult> InvokeAsync(Command command, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(command);
        var input = ToolInput.RequireObject(Kind, command.Input);
        var program = ToolInput.RequireString(Kind, input, "command");
        var timeout = ToolInput.OptionalMilliseconds(Kind, input, "timeout_ms") is { } ms ? TimeSpan.FromMilliseconds(ms) : DefaultTimeout;
        var maxOutput = ToolInput.OutputLimit(Kind, input, "max_output_bytes", _maxOutputBytes);
        var cwd = ToolInput.OptionalString(Kind, input, "cwd");
        var args = ToolInput.OptionalStringArray(Kind, input, "args");
        var env = ToolInput.OptionalStringMap(Kind, input, "env");

        if (!string.IsNullOrEmpty(cwd) && !Directory.Exists(cwd))
        {
            return ToolResult.Failure($"shell: cannot start '{program}': the working directory '{cwd}' does not exist.");
        }

        var inGroup = _setsidPath is not null;
        string? resolved = null;
        ProcessStartInfo startInfo;
        if (inGroup)
        {
            // setsid gets the program .NET would have run, as a path, so its own PATH search never differs.
            resolved = ProgramPath.Resolve(program);
            if (resolved is null || Directory.Exists(resolved))
            {
                var reason = resolved is null ? "No such file or directory" : "it is a directory";
                return ToolResult.Failure($"shell: cannot start '{program}': {reason}.");
            }

            startInfo = new ProcessStartInfo(_setsidPath!);
            startInfo.ArgumentList.Add("--");
            startInfo.ArgumentList.Add(resolved);
        }
        else
        {
            startInfo = new ProcessStartInfo(program);
        }

        startInfo.RedirectStandardOutput = true;
        startInfo.RedirectStandardError = true;
        startInfo.RedirectStandardInput = true;
        startInfo.UseShellExecute = false;
        startInfo.WorkingDirectory = cwd ?? string.Empty;
        foreach (var arg in args)
        {
            startInfo.ArgumentList.Add(arg);
        }

        foreach (var (name, value) in env)
        {
            startInfo.Environment[name] = value;
        }

        using var process = new Process { StartInfo = startInfo };
        try
        {
            process.Start();
        }
        catch (Win32Exception ex)
        {
            return ToolResult.Failure($"shell: cannot start '{program}': {ex.Message}");
        }

        process.StandardInput.Close();
        using var stdout = new BoundedOutput(maxOutput);
        using var stderr = new BoundedOutput(maxOutput);
        using var runCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        runCts.CancelAfter(timeout);
        var reading = Task.WhenAll(
            stdout.ReadFromAsync(process.StandardOutput.BaseStream, drainPastLimit: true, runCts.Token),
            stderr.ReadFromAsync(process.StandardError.BaseStream, drainPastLimit: true, runCts.Token));
        var ended = false;
        var timedOut = false;
        try
        {
            // The run ends when the process has exited and every holder of its output has closed it.
            await process.WaitForExitAsync(runCts.Token).ConfigureAwait(false);
            await reading.ConfigureAwait(false);
            ended = true;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            timedOut = true;
        }
        finally
        {
            if (!ended)
            {
                // Timeout, cancellation (rethrown), or a failed read: nothing may go on running or reading.
                await runCts.CancelAsync().ConfigureAwait(false); // readers stop even if an escaped child holds a pipe
                await KillAsync(process, inGroup).ConfigureAwait(false);
                await reading.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing); // the buffers are pooled: no reader may outlive them
            }
        }

        if (timedOut)
        {
            return ToolResult.Failure(
                $"shell: '{program}' timed out after {timeout.TotalMilliseconds:0} ms and was killed.",
                transient: true,
                BuildResult(process.ExitCode, stdout, stderr, stderr.Decode()));
        }

        // Nothing a command started outlives it: a background child that let go of the output is killed here.
        if (inGroup)
        {
            ProcessGroup.Kill(process.Id);
        }

        var exitCode = process.ExitCode;
        var error = stderr.Decode();
        if (resolved is not null && exitCode is 126 or 127
            && error.StartsWith("setsid: ", StringComparison.Ordinal) && error.Contains(resolved, StringComparison.Ordinal))
        {
            // setsid could not exec the program (not executable, bad format): what .NET reports as a start failure.
            var reason = error.AsSpan().Trim();
            return ToolResult.Failure($"shell: cannot start '{program}': {reason[(reason.LastIndexOf(": ", StringComparison.Ordinal) + 2)..]}.");
        }

        var result = BuildResult(exitCode, stdout, stderr, error);
        return exitCode == 0
            ? ToolResult.Success(result)
            : ToolResult.Failure(BuildExitMessage(program, exitCode, error), transient: false, result);
    }

    private static async Task KillAsync(Process process, bool inGroup)
    {
        // The group first, in one signal: a program forking in a loop stops at once (walking the
        // tree first let a fork loop outrun the kill for minutes). Then the tree: it reaches a
        // child that left the group (its own session) while its parent still lives.
        if (inGroup)
        {
            ProcessGroup.Kill(process.Id);
        }

        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (Exception ex) when (ex is InvalidOperationException or AggregateException or Win32Exception)
        {
            // Already exited, or a child that could not be signalled.
        }

        await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
        if (inGroup)
        {
            ProcessGroup.Kill(process.Id);
        }
    }

    private static JsonElement BuildResult(int exitCode, BoundedOutput stdout, BoundedOutput stderr, string error) =>
        JsonResult.Build((exitCode, stdout, stderr, error), static (w, s) =>
        {
            w.WriteStartObject();
            w.WriteNumber("exit_code", s.exitCode);
            w.WriteString("stdout", s.stdout.Decode());
            w.WriteString("stderr", s.error);
            w.WriteBoolean("truncated", s.stdout.Truncated || s.stderr.Truncated);
            w.WriteNumber("stdout_bytes", s.stdout.TotalBytes);
            w.WriteNumber("stderr_bytes", s.stderr.TotalBytes);
            w.WriteEndObject();
        });

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
