using System.Runtime.CompilerServices;

namespace Pipeline.Testing;

/// <summary>
/// Raises the thread pool's minimum in every test assembly before any test runs (compiled into
/// each test project by tests/Directory.Build.props, not into this library).
/// </summary>
/// <remarks>
/// The test host blocks pool threads of its own for the whole run: vstest's socket loop polls on
/// one, and the xunit adapter waits on two more for discovery and for the run's end. The pool's
/// minimum is the core count (2 on the CI machine), so with those three blocked every burst of
/// work (a timer's callback, a settle's continuation) waited for the pool to add a thread, which
/// it does about twice a second: keep-alive timers stalled for 0.5-1 s with both CPUs idle, and a
/// sink's deadline token fired with the end of the settle budget instead of before it. The
/// engine blocks no pool thread itself; docs/architecture.md ("Thread pool") says what a host
/// that does should set. The four are the test host's three plus one for the tests whose
/// callees block their thread on purpose (a sink that sleeps, a nack that blocks).
/// </remarks>
internal static class TestHostThreadPool
{
    /// <summary>Pool threads the test host and the deliberately blocking callees hold, beyond the cores the code under test needs.</summary>
    public const int BlockedByTheHost = 4;

#pragma warning disable CA2255 // a test assembly is the application here: its host gives it no earlier hook
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void RaiseMinimum()
    {
        ThreadPool.GetMinThreads(out var workers, out var completionPorts);
        var wanted = Environment.ProcessorCount + BlockedByTheHost;
        if (workers < wanted)
        {
            ThreadPool.SetMinThreads(wanted, completionPorts);
        }
    }
}
