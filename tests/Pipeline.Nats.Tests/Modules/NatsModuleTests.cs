using Microsoft.Extensions.Configuration;
using Pipeline.Engine;
using Pipeline.Modules;
using Pipeline.Nats.Modules;

namespace Pipeline.Nats.Tests.Modules;

/// <summary>The NATS module's part of a run: which of its settings it checks for what is chosen, how each error names its key, and the older claimer key.</summary>
public sealed class NatsModuleTests : IDisposable
{
    private static readonly PipelineModules Modules = new([CoreModule.Instance, new NatsModule()]);

    // The file source checks its commands file is there.
    private readonly string _commands = Path.GetTempFileName();

    public void Dispose() => File.Delete(_commands);

    private PipelineSetup Prepare(string source, string? claimer = null, string? events = null, params (string Key, string? Value)[] settings)
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value)).Append(new("CommandsFile", _commands)))
            .Build();
        return Modules.Prepare(new PipelineChoice(source, claimer, events), new ModuleContext(configuration, new PipelineOptions()));
    }

    [Theory]
    [InlineData("nats", null, null, "Pipeline:Nats:Connection:Url is required with Pipeline:Source 'nats' (e.g. nats://127.0.0.1:4222).")]
    [InlineData("file", null, "nats", "Pipeline:Events 'nats' needs Pipeline:Nats:Connection:Url.")]
    [InlineData("file", "nats-kv", null, "Pipeline:Claimer 'nats-kv' needs Pipeline:Nats:Connection:Url.")]
    public void Whatever_uses_nats_without_a_server_is_an_error_saying_which_setting_needs_it(string source, string? claimer, string? events, string expected)
    {
        Assert.Equal([expected], Prepare(source, claimer, events).Errors);
    }

    [Fact]
    public void Each_part_in_use_is_checked_and_every_error_names_its_key()
    {
        var errors = Prepare(
            "nats",
            "nats-kv",
            "nats",
            ("Nats:Connection:Url", "nats://127.0.0.1:1"),
            ("Nats:Source:FetchBatch", "20000"),
            ("Nats:Claimer:Bucket", "a b"),
            ("Nats:Events:SubjectTemplate", "")).Errors;

        // Every error of each part, not only its first: FetchBatch 20000 breaks three rules of the source's.
        Assert.Equal(5, errors.Count);
        Assert.StartsWith("Pipeline:Nats:Source:FetchBatch must be from 1 to 10000.", errors[0], StringComparison.Ordinal);
        Assert.StartsWith("Pipeline:Nats:Source:FetchBatch (20000) must not exceed MaxAckPending (4096)", errors[1], StringComparison.Ordinal);
        Assert.StartsWith("Pipeline:Nats:Source:MaxAckPending (4096) must be at least MaxInFlight (1024) + FetchBatch (20000)", errors[2], StringComparison.Ordinal);
        Assert.StartsWith("Pipeline:Nats:Claimer:Bucket", errors[3], StringComparison.Ordinal);
        Assert.StartsWith("Pipeline:Nats:Events:SubjectTemplate", errors[4], StringComparison.Ordinal);
    }

    [Fact]
    public void A_section_not_in_use_is_not_checked()
    {
        var setup = Prepare("file", settings: ("Nats:Source:FetchBatch", "20000"));

        Assert.Empty(setup.Errors);
    }

    [Fact]
    public void A_value_that_cannot_be_read_is_an_error_naming_its_key_not_an_exception()
    {
        var error = Assert.Single(Prepare("nats", settings: [("Nats:Connection:Url", "nats://127.0.0.1:1"), ("Nats:Source:AckWait", "soon")]).Errors);

        Assert.Contains("Pipeline:Nats:Source:AckWait", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("nats", null, true)]
    [InlineData("nats", "none", false)]
    [InlineData("file", null, false)]
    public async Task The_older_kv_claimer_key_chooses_the_kv_claimer_for_a_nats_source_unless_the_claimer_is_named(string source, string? claimer, bool expected)
    {
        var setup = Prepare(source, claimer, settings: [("Nats:Connection:Url", "nats://127.0.0.1:1"), ("Nats:KvClaimer", "true")]);
        Assert.Empty(setup.Errors);

        await using var run = await setup.OpenAsync(new ModuleRunContext(Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance));

        Assert.Equal(expected, run.HasClaimer);
    }

    [Fact]
    public void The_source_is_described_by_its_server_stream_consumer_and_idle_end_with_no_secret()
    {
        var setup = Prepare(
            "nats",
            events: "nats",
            settings: [("Nats:Connection:Url", "nats://ops:hunter2@127.0.0.1:4222"), ("Nats:Source:Stream", "orders"), ("Nats:Source:IdleTimeout", "00:00:02")]);

        Assert.Equal(new SourceDescription("nats://***@127.0.0.1:4222", "stream orders consumer pipeline-workers", ", ending after 2 s idle"), setup.Source);
        Assert.Equal("NATS subjects pipeline.events.{execution_id}", setup.EventsName);
    }

    /// <summary>
    /// A run stopped while its server cannot be reached (the worker's connection retries its first
    /// connect) and then closed leaves nothing trying to connect: every connection the run opened
    /// is closed on that path too, not left retrying in the background for the life of the process.
    /// The "server" is a loopback listener that counts connection attempts and hangs up on each.
    /// </summary>
    [Fact]
    public async Task A_run_stopped_before_its_server_was_reached_and_closed_stops_connecting()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        var attempts = 0;
        using var stopAccepting = new CancellationTokenSource();
        var accepting = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    using var socket = await listener.AcceptSocketAsync(stopAccepting.Token);
                    Interlocked.Increment(ref attempts);
                }
            }
            catch (OperationCanceledException)
            {
                // The test is done.
            }
        });
        var setup = Prepare("nats", settings: ("Nats:Connection:Url", $"nats://127.0.0.1:{port}"));
        Assert.Empty(setup.Errors);
        var run = await setup.OpenAsync(new ModuleRunContext(Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance));
        using var stop = new CancellationTokenSource();
        var running = run.RunSourceAsync(new NeverRunner(), stop.Token);
        await Eventually.WaitFor(() => Volatile.Read(ref attempts) >= 2, TimeSpan.FromSeconds(30), "the worker's connection retrying its first connect");

        await stop.CancelAsync();
        Assert.Null(await running.WaitAsync(TimeSpan.FromSeconds(10)));
        await run.DisposeAsync();
        var closedAt = Volatile.Read(ref attempts);
        // Retries come every ~2 s (NATS.Net's ReconnectWaitMin): three of them fit in 7 s.
        await Task.Delay(TimeSpan.FromSeconds(7));
        var after = Volatile.Read(ref attempts);

        await stopAccepting.CancelAsync();
        await accepting;
        Assert.Equal(closedAt, after);
    }

    /// <summary>A host's side of the run that must not be reached: nothing is pulled from a server that was never reached.</summary>
    private sealed class NeverRunner : IPipelineRunner
    {
        public Task<RunEnd> RunAsync<THandle>(Pipeline.Sources.ICommandSource<THandle> source, Func<bool>? exhausted = null) =>
            throw new InvalidOperationException("The pipeline ran over a source whose server was never reached.");
    }
}
