using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Pipeline.Testing.Processes;

/// <summary>
/// What the tests that run a real binary next to them (<c>pipeline</c>, <c>hosted-worker</c>) do
/// alike: start it with its output redirected and no colours, and send it real POSIX signals.
/// </summary>
public static partial class ChildProcesses
{
    /// <summary>
    /// How to start <paramref name="binary"/> (next to the tests; <c>.exe</c> added on Windows) in
    /// <paramref name="workingDirectory"/> with <paramref name="args"/>, stdout and stderr redirected,
    /// <c>NO_COLOR</c> set (what a pipe would get), then the binary's own <paramref name="defaults"/>,
    /// then the test's <paramref name="environment"/> (which may override either).
    /// </summary>
    public static ProcessStartInfo StartInfo(
        string binary, IEnumerable<string> args, string workingDirectory, IReadOnlyDictionary<string, string>? environment, IReadOnlyDictionary<string, string> defaults)
    {
        ArgumentNullException.ThrowIfNull(defaults);
        var startInfo = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, OperatingSystem.IsWindows() ? binary + ".exe" : binary))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        foreach (var arg in args)
        {
            startInfo.ArgumentList.Add(arg);
        }

        startInfo.Environment["NO_COLOR"] = "1";
        foreach (var (name, value) in defaults.Concat(environment ?? new Dictionary<string, string>()))
        {
            startInfo.Environment[name] = value;
        }

        return WithDefaultSignals(startInfo);
    }

    /// <summary>
    /// <paramref name="startInfo"/> started through <c>env --default-signal</c>: SIGINT, SIGQUIT,
    /// SIGHUP and SIGTERM at their default handling, as a foreground job gets them. A shell that
    /// runs the tests in the background (<c>./test.sh &amp;</c>, nohup, some CI runners) starts its
    /// children with SIGINT and SIGQUIT ignored (SIGHUP too under nohup), a process keeps a signal
    /// ignored at its start, and a test of what the binary does on Ctrl-C would wait for nothing.
    /// <c>env</c> execs the binary, so the process id is the binary's. Unchanged where <c>env</c>
    /// has no such option (not GNU coreutils 8.31 or later).
    /// </summary>
    public static ProcessStartInfo WithDefaultSignals(ProcessStartInfo startInfo)
    {
        ArgumentNullException.ThrowIfNull(startInfo);
        if (DefaultSignalsPrefix.Value is not { } prefix)
        {
            return startInfo;
        }

        var args = startInfo.ArgumentList.ToList();
        startInfo.ArgumentList.Clear();
        foreach (var arg in prefix.Skip(1).Append(startInfo.FileName).Concat(args))
        {
            startInfo.ArgumentList.Add(arg);
        }

        startInfo.FileName = prefix[0];
        return startInfo;
    }

    /// <summary>The command line that starts a program with default signal handling (<c>env --default-signal=…</c>), or null where there is none.</summary>
    public static readonly Lazy<string[]?> DefaultSignalsPrefix = new(() =>
    {
        string[] prefix = ["/usr/bin/env", "--default-signal=INT,QUIT,HUP,TERM"];
        if (!OperatingSystem.IsLinux() || !File.Exists(prefix[0]))
        {
            return null;
        }

        try
        {
            using var probe = Process.Start(new ProcessStartInfo(prefix[0], [prefix[1], "true"]) { UseShellExecute = false, RedirectStandardError = true })!;
            probe.WaitForExit();
            return probe.ExitCode == 0 ? prefix : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    });

    /// <summary>Sends <paramref name="signal"/> to <paramref name="process"/> (a real signal, as a terminal or an orchestrator would).</summary>
    public static void Signal(Process process, int signal)
    {
        ArgumentNullException.ThrowIfNull(process);
        if (Kill(process.Id, signal) != 0)
        {
            throw new InvalidOperationException($"kill({process.Id}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    /// <summary>
    /// Waits for <paramref name="process"/> to exit and for its redirected output to be read to its
    /// end; past <paramref name="timeout"/> kills its tree and throws, with <paramref name="output"/>
    /// (what it wrote) in the message. The exit code.
    /// </summary>
    public static async Task<int> WaitForExitAsync(Process process, TimeSpan timeout, Func<string> output)
    {
        ArgumentNullException.ThrowIfNull(process);
        ArgumentNullException.ThrowIfNull(output);
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            throw new TimeoutException($"{Path.GetFileName(process.StartInfo.FileName)} did not exit within {timeout}.\n{output()}");
        }

        // The parameterless wait returns once the output streams are read to their end.
        await process.WaitForExitAsync(CancellationToken.None);
        return process.ExitCode;
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
