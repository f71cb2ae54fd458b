using System.Globalization;
using Pipeline.Testing.Processes;

namespace Pipeline.Cli.Tests.Support;

/// <summary>
/// The real <c>pipeline</c> binary (the apphost next to the tests) run as a child process: its
/// output captured, signals sent to it, its peak resident memory sampled from /proc.
/// </summary>
internal sealed class PipelineProcess : IDisposable
{
    public const int SigHup = 1;
    public const int SigInt = 2;
    public const int SigQuit = 3;
    public const int SigKill = 9;
    public const int SigTerm = 15;

    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Task _sampler;
    private readonly CancellationTokenSource _stopSampling = new();
    private long _peakRssBytes;

    private PipelineProcess(Process process)
    {
        _process = process;
        _process.OutputDataReceived += (_, e) => Append(_stdout, e.Data);
        _process.ErrorDataReceived += (_, e) => Append(_stderr, e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        _sampler = Task.Run(SampleMemoryAsync);
    }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    public TimeSpan Elapsed => _clock.Elapsed;

    /// <summary>The highest resident set size seen (VmHWM), sampled every 20 ms while the process ran.</summary>
    public long PeakRssBytes => Interlocked.Read(ref _peakRssBytes);

    public string Stdout
    {
        get
        {
            lock (_stdout)
            {
                return _stdout.ToString();
            }
        }
    }

    public string Stderr
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToString();
            }
        }
    }

    /// <summary>Starts <c>pipeline</c> with <paramref name="args"/>; <paramref name="stdin"/>, when given, is written and closed.</summary>
    public static PipelineProcess Start(IEnumerable<string> args, string? stdin = null, string? workingDirectory = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        var startInfo = ChildProcesses.StartInfo(
            "pipeline", args, workingDirectory ?? AppContext.BaseDirectory, environment, new Dictionary<string, string> { ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1" });
        startInfo.RedirectStandardInput = true;

        var process = Process.Start(startInfo) ?? throw new InvalidOperationException("pipeline did not start");
        if (stdin is not null)
        {
            process.StandardInput.Write(stdin);
        }

        process.StandardInput.Close();
        return new PipelineProcess(process);
    }

    /// <summary>Sends <paramref name="signal"/> to the process (a real POSIX signal, as a terminal or an orchestrator would).</summary>
    public void Signal(int signal) => ChildProcesses.Signal(_process, signal);

    /// <summary>Waits until stdout or stderr contains <paramref name="text"/>.</summary>
    public async Task WaitForOutputAsync(string text, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        while (!Stdout.Contains(text, StringComparison.Ordinal) && !Stderr.Contains(text, StringComparison.Ordinal))
        {
            if (deadline.Elapsed > timeout || _process.HasExited)
            {
                throw new TimeoutException($"'{text}' not seen within {timeout}. exited={_process.HasExited}\nstdout:\n{Stdout}\nstderr:\n{Stderr}");
            }

            await Task.Delay(20);
        }
    }

    /// <summary>
    /// Waits until a plain <c>progress:</c> line (printed every second when not on a terminal)
    /// matches <paramref name="pattern"/>: a state of the run, such as everything read and held,
    /// rather than the first line, which under load can come before the source has read anything.
    /// </summary>
    public async Task WaitForProgressAsync(string pattern, TimeSpan timeout)
    {
        var regex = new System.Text.RegularExpressions.Regex("^progress: .*" + pattern, System.Text.RegularExpressions.RegexOptions.Multiline);
        var deadline = Stopwatch.StartNew();
        while (!regex.IsMatch(Stdout) && !regex.IsMatch(Stderr))
        {
            if (deadline.Elapsed > timeout || _process.HasExited)
            {
                throw new TimeoutException($"no progress line matching '{pattern}' within {timeout}. exited={_process.HasExited}\nstdout:\n{Stdout}\nstderr:\n{Stderr}");
            }

            await Task.Delay(20);
        }
    }

    /// <summary>Waits for the process to exit (killing it past <paramref name="timeout"/>) and for its output to be read.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        var exit = await ChildProcesses.WaitForExitAsync(_process, timeout, () => $"stdout:\n{Stdout}\nstderr:\n{Stderr}");
        _clock.Stop();
        await _stopSampling.CancelAsync();
        await _sampler;
        return exit;
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        _stopSampling.Cancel();
        _process.Dispose();
        _stopSampling.Dispose();
    }

    private static void Append(StringBuilder target, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (target)
        {
            target.Append(line).Append('\n');
        }
    }

    private async Task SampleMemoryAsync()
    {
        var status = $"/proc/{_process.Id}/status";
        while (!_stopSampling.IsCancellationRequested)
        {
            try
            {
                foreach (var line in await File.ReadAllLinesAsync(status))
                {
                    if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    {
                        var kb = long.Parse(line["VmHWM:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
                        var bytes = kb * 1024;
                        if (bytes > Interlocked.Read(ref _peakRssBytes))
                        {
                            Interlocked.Exchange(ref _peakRssBytes, bytes);
                        }
                    }
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                return; // the process is gone
            }

            try
            {
                await Task.Delay(20, _stopSampling.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}
