using System.Diagnostics;
using System.Text;
using Pipeline.Testing.Processes;

namespace Pipeline.Hosting.Tests.Support;

/// <summary>
/// The README's hosting snippet built as a program (<c>tests/Pipeline.HostedWorker</c>, copied next
/// to the tests as <c>hosted-worker</c>) run as a child process: what a hosted worker's process
/// does at exit (its code, its output) can only be seen on a real process.
/// </summary>
internal sealed class HostedWorkerProcess : IDisposable
{
    public const int SigTerm = 15;

    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private HostedWorkerProcess(Process process)
    {
        _process = process;
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>Everything the process wrote, stdout and stderr interleaved as read.</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Starts the worker in <paramref name="directory"/> with <paramref name="args"/> (<c>--Pipeline:Key=value</c>) and the environment's additions.</summary>
    public static HostedWorkerProcess Start(string directory, IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        // No settings leaking in from the test's environment.
        var startInfo = ChildProcesses.StartInfo("hosted-worker", args, directory, environment, new Dictionary<string, string> { ["DOTNET_ENVIRONMENT"] = "Production" });
        return new HostedWorkerProcess(Process.Start(startInfo) ?? throw new InvalidOperationException("hosted-worker did not start."));
    }

    /// <summary>Sends <paramref name="signal"/> to the process.</summary>
    public void Signal(int signal) => ChildProcesses.Signal(_process, signal);

    /// <summary>Waits for the exit (killing the process past <paramref name="timeout"/>, then failing) and for its output to be read; the exit code.</summary>
    public Task<int> WaitForExitAsync(TimeSpan timeout) => ChildProcesses.WaitForExitAsync(_process, timeout, () => Output);

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        _process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_output)
            {
                _output.AppendLine(line);
            }
        }
    }
}
