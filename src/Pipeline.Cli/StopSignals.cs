using System.Runtime.InteropServices;

namespace Pipeline.Cli;

/// <summary>
/// How a run is asked to stop. The first SIGINT (Ctrl+C) or SIGTERM asks for a graceful stop: no
/// more pulls, in-flight commands get <c>--shutdown-timeout-ms</c> to finish. A second one, or
/// SIGQUIT, stops at once: the deadline is now, what is still open is nacked. Either way the run
/// settles what it can, flushes events, prints its summary and restores the terminal: the
/// process is never killed by the signal itself.
/// </summary>
public sealed class StopSignals : IDisposable
{
    private readonly CancellationTokenSource _graceful = new();
    private readonly CancellationTokenSource _now = new();
    private readonly List<PosixSignalRegistration> _registrations = [];
    private StopRequest? _first;

    /// <summary>Fires on the first stop request.</summary>
    public CancellationToken Graceful => _graceful.Token;

    /// <summary>Fires on a second stop request, or a first one that asked to stop at once.</summary>
    public CancellationToken Now => _now.Token;

    /// <summary>The first request, or null while none came.</summary>
    public StopRequest? First => Volatile.Read(ref _first);

    /// <summary>Listens for SIGINT, SIGTERM, SIGHUP and SIGQUIT (on Windows: Ctrl+C and Ctrl+Break, and closing the console).</summary>
    public static StopSignals Listen()
    {
        var signals = new StopSignals();
        signals.Register(PosixSignal.SIGINT, "SIGINT", 2, immediately: false);
        signals.Register(PosixSignal.SIGTERM, "SIGTERM", 15, immediately: false);
        signals.Register(PosixSignal.SIGQUIT, "SIGQUIT", 3, immediately: true);
        // The terminal closed (an ssh session dropped): drain as for SIGTERM rather than vanish.
        signals.Register(PosixSignal.SIGHUP, "SIGHUP", 1, immediately: false);
        return signals;
    }

    /// <summary>Asks the run to stop; the second request (or one with <paramref name="immediately"/>) stops it at once.</summary>
    /// <returns>True when this request stopped the run at once.</returns>
    public bool Request(StopRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var first = Interlocked.CompareExchange(ref _first, request, null) is null;
        var now = request.Immediately || !first;
        try
        {
            if (now)
            {
                _now.Cancel();
            }

            _graceful.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // A signal after the run has ended and the sources were disposed: nothing left to stop.
        }

        return now;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var registration in _registrations)
        {
            registration.Dispose();
        }

        _graceful.Dispose();
        _now.Dispose();
    }

    private void Register(PosixSignal signal, string name, int number, bool immediately)
    {
        try
        {
            _registrations.Add(PosixSignalRegistration.Create(signal, context =>
            {
                // Handled here: the runtime's default (end the process) would lose the drain.
                context.Cancel = true;
                Request(new StopRequest(name, 128 + number, immediately));
            }));
        }
        catch (PlatformNotSupportedException)
        {
            // SIGQUIT has no equivalent on some platforms; the others still stop the run.
        }
    }
}

/// <summary>One request to stop: what sent it and the exit code a run it interrupted ends with.</summary>
/// <param name="Name">The signal's name, as the summary shows it.</param>
/// <param name="ExitCode">128 + the signal number, as shells report a process ended by it.</param>
/// <param name="Immediately">Stop at once rather than drain.</param>
public sealed record StopRequest(string Name, int ExitCode, bool Immediately);
