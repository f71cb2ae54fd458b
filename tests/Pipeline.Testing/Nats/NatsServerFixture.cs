using System.Diagnostics;
using NATS.Client.Core;

namespace Pipeline.Testing;

/// <summary>
/// One real <c>nats-server -js</c> shared by every test in <see cref="NatsCollection"/>: its store
/// in a temporary folder, on a free loopback port. It can be killed (-9) or stopped gracefully
/// and started again on the same port and store. Tests use their own stream names.
/// </summary>
public sealed class NatsServerFixture : IAsyncLifetime
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), $"pipeline-nats-{Guid.NewGuid():N}");
    private Process? _server;
    private int _started;

    /// <summary>The loopback port, fixed for the fixture's life.</summary>
    public int Port { get; } = LoopbackPort.Free();

    /// <summary>The server's URL.</summary>
    public string Url => $"nats://127.0.0.1:{Port}";

    /// <summary>Arguments added to the server's command line (e.g. <c>--user u --pass p</c> for a server that requires auth). Default none.</summary>
    public IReadOnlyList<string> ExtraArguments { get; init; } = [];

    /// <summary>The credentials the readiness probe and <see cref="Options"/> use, to match <see cref="ExtraArguments"/>. Default none.</summary>
    public NatsAuthOpts Auth { get; init; } = NatsAuthOpts.Default;

    /// <summary>The TLS settings of the readiness probe and <see cref="Options"/>, for a server started with <c>--tls</c>. Default NATS.Net's.</summary>
    public NatsTlsOpts Tls { get; init; } = NatsTlsOpts.Default;

    /// <summary>Whether the server process is running.</summary>
    public bool Running => _server is { HasExited: false };

    private string StoreDirectory => Path.Combine(_root, "store");

    private string LogFile => Path.Combine(_root, "server.log");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(StoreDirectory);
        await StartAsync();
    }

    public async Task DisposeAsync()
    {
        await KillAsync();
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
            // A file still being closed; the temp folder is cleaned by the OS eventually.
        }
    }

    /// <summary>Starts the server (again) on the same port and store, and waits until it accepts connections.</summary>
    public async Task StartAsync()
    {
        if (Running)
        {
            return;
        }

        var info = new ProcessStartInfo("nats-server")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[] { "-js", "-a", "127.0.0.1", "-p", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-sd", StoreDirectory, "-l", LogFile }.Concat(ExtraArguments))
        {
            info.ArgumentList.Add(argument);
        }

        try
        {
            _server = Process.Start(info) ?? throw new InvalidOperationException("nats-server did not start.");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InvalidOperationException("nats-server is not installed: run ./test.sh, or apt-get install nats-server.", ex);
        }

        _server.OutputDataReceived += static (_, _) => { };
        _server.ErrorDataReceived += static (_, _) => { };
        _server.BeginOutputReadLine();
        _server.BeginErrorReadLine();
        _started++;
        await WaitUntilReadyAsync(TimeSpan.FromSeconds(20));
    }

    /// <summary>kill -9: no chance to flush or say goodbye.</summary>
    public async Task KillAsync()
    {
        if (_server is not { } server)
        {
            return;
        }

        if (!server.HasExited)
        {
            server.Kill(entireProcessTree: false); // SIGKILL on Unix
        }

        await server.WaitForExitAsync();
        server.Dispose();
        _server = null;
    }

    /// <summary>
    /// SIGSTOP: the server stops answering and keeps every connection open (a hung host): what
    /// clients send waits in its socket buffers, and is acted on after <see cref="ResumeAsync"/>.
    /// </summary>
    public Task PauseAsync() => SignalAsync("-STOP");

    /// <summary>SIGCONT: a paused server goes on with what it was sent meanwhile.</summary>
    public Task ResumeAsync() => SignalAsync("-CONT");

    /// <summary>SIGTERM: the server shuts down cleanly.</summary>
    public async Task StopAsync()
    {
        if (_server is not { } server)
        {
            return;
        }

        if (!server.HasExited)
        {
            using var kill = Process.Start("kill", ["-TERM", server.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            await kill!.WaitForExitAsync();
        }

        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        await server.WaitForExitAsync(bound.Token);
        server.Dispose();
        _server = null;
    }

    private async Task SignalAsync(string signal)
    {
        var server = _server ?? throw new InvalidOperationException("nats-server is not running.");
        using var kill = Process.Start("kill", [signal, server.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        await kill!.WaitForExitAsync();
        if (kill.ExitCode != 0)
        {
            throw new InvalidOperationException($"kill {signal} {server.Id} exited with {kill.ExitCode}.");
        }
    }

    /// <summary>A client connection that reconnects forever, quickly (the tests restart the server).</summary>
    public NatsConnection Connect(string name = "test") => new(Options(name));

    /// <summary>The options <see cref="Connect"/> uses.</summary>
    public NatsOpts Options(string name = "test") => NatsOpts.Default with
    {
        Url = Url,
        Name = name,
        AuthOpts = Auth,
        TlsOpts = Tls,
        MaxReconnectRetry = -1,
        ReconnectWaitMin = TimeSpan.FromMilliseconds(100),
        ReconnectWaitMax = TimeSpan.FromSeconds(1),
        ReconnectJitter = TimeSpan.FromMilliseconds(50),
    };

    /// <summary>A name no other test uses (streams, consumers, buckets, subjects).</summary>
    public static string UniqueName(string prefix) => $"{prefix}_{Guid.NewGuid().ToString("N")[..12]}";

    private Task WaitUntilReadyAsync(TimeSpan bound) => ServerReadiness.WaitAsync(
        async () =>
        {
            await using var probe = new NatsConnection(NatsOpts.Default with { Url = Url, AuthOpts = Auth, TlsOpts = Tls, MaxReconnectRetry = 0, ConnectTimeout = TimeSpan.FromSeconds(1) });
            await probe.ConnectAsync();
            await probe.PingAsync();
        },
        bound,
        () => $"nats-server not ready on {Url} after {bound.TotalSeconds} s: {Tail()}",
        () =>
        {
            if (_server is { HasExited: true } exited)
            {
                throw new InvalidOperationException($"nats-server exited with {exited.ExitCode}: {Tail()}");
            }
        });

    private string Tail() => ServerReadiness.LogTail(LogFile);
}
