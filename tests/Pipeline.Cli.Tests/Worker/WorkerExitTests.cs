using NATS.Client.Core;

namespace Pipeline.Cli.Tests.Worker;

/// <summary>
/// How the real <c>pipeline worker</c> ends against a real nats-server when its input or setup is
/// wrong: raw messages of any shape, a SIGTERM mid-run, a full disk, a missing stream or events
/// folder, an unreachable server; each with the exit code and summary the README gives.
/// </summary>
[Collection(RealProcesses.Name)]
public sealed class WorkerExitTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>, IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("pipeline-worker-exit-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private async Task<(string Stream, string Subject, List<string> Args)> StreamAsync(string prefix)
    {
        var stream = NatsServerFixture.UniqueName(prefix);
        await using var connection = nats.Connect();
        await new NatsJSContext(connection).CreateStreamAsync(new StreamConfig(stream, [$"{stream}.>"]));
        return (stream, $"{stream}.cmd", ["worker", "--nats", nats.Url, "--stream", stream, "--subjects", $"{stream}.>", "--consumer", $"{stream}_workers"]);
    }

    private async Task PublishAsync(string subject, IEnumerable<byte[]> bodies, NatsHeaders? headers = null)
    {
        await using var connection = nats.Connect();
        await JetStream.PublishAsync(connection, subject, [.. bodies], headers);
    }

    private async Task<ConsumerInfo> ConsumerAsync(string stream)
    {
        await using var connection = nats.Connect();
        return await JetStream.ConsumerInfoAsync(connection, stream, $"{stream}_workers");
    }

    private static byte[] Delay(string id, int ms) =>
        Encoding.UTF8.GetBytes($$$"""{"command_id":"{{{id}}}","execution_id":1,"step":"s","tool_kind":"delay","input":{"ms":{{{ms}}}}}""");

    private static byte[] Noop(string id) =>
        Encoding.UTF8.GetBytes($$$"""{"command_id":"{{{id}}}","execution_id":2,"step":"s","tool_kind":"noop","input":{}}""");

    private static List<(string Type, string? Id)> ReadEvents(string path) =>
        [.. File.ReadAllLines(path).Where(l => l.Length > 0).Select(line =>
        {
            var e = JsonDocument.Parse(line).RootElement;
            return (e.GetProperty("event_type").GetString()!, e.TryGetProperty("command_id", out var id) ? id.GetString() : null);
        })];

    /// <summary>Waits (30 s at most) until the worker has written its first command.started event.</summary>
    private static async Task FirstStartAsync(PipelineProcess worker, string events)
    {
        var seen = Stopwatch.StartNew();
        while (!File.Exists(events) || !File.ReadAllText(events).Contains("command.started", StringComparison.Ordinal))
        {
            Assert.True(seen.Elapsed < TimeSpan.FromSeconds(30) && !worker.HasExited, $"no command started\n{Describe(worker)}");
            await Task.Delay(20);
        }
    }

    private static string Describe(PipelineProcess p) => $"stdout:\n{p.Stdout}\nstderr:\n{p.Stderr}";

    [Fact]
    public async Task Raw_messages_of_any_shape_are_settled_once_and_nothing_is_left_pending_or_redelivered()
    {
        var (stream, subject, args) = await StreamAsync("h8raw");
        byte[][] garbage =
        [
            [0x00, 0xff, 0xfe, 0x01],
            [],
            "null"u8.ToArray(),
            "[1,2,3]"u8.ToArray(),
            "{}"u8.ToArray(),
            """{"command_id":"m1","execution_id":1}"""u8.ToArray(),
            """{"command_id":"","execution_id":1,"step":"s","tool_kind":"noop","input":{}}"""u8.ToArray(),
            """{"command_id":"x","execution_id":"abc","step":"s","tool_kind":"noop","input":{}}"""u8.ToArray(),
            Encoding.UTF8.GetBytes("""{"command_id":"deep","execution_id":1,"step":"s","tool_kind":"echo","input":""" + new string('[', 100_000) + new string(']', 100_000) + "}"),
            [.. "\uFEFF"u8.ToArray(), .. Noop("bom")],
            """{"command_id":"inv\xff","execution_id":1,"step":"s","tool_kind":"noop","input":{}}"""u8.ToArray(),
            """{"command_id":"u1","execution_id":1,"step":"s","tool_kind":"no_such_tool","input":{}}"""u8.ToArray(),
            """{"command_id":"neg","execution_id":1,"step":"s","tool_kind":"noop","input":{},"attempts":-1}"""u8.ToArray(),
        ];
        await PublishAsync(subject, garbage);
        var badTrace = new NatsHeaders { ["traceparent"] = new string('A', 4000), ["tracestate"] = "\u0001\u0002" };
        await PublishAsync(subject, [Noop("tp")], badTrace);
        var events = Path.Combine(_directory, "raw.jsonl");

        using var worker = PipelineProcess.Start([.. args, "--ack-wait-ms", "1000", "--exit-when-idle", "4", "--events", events]);
        var exit = await worker.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.True(exit == 1, $"exit {exit}\n{Describe(worker)}");
        var info = await ConsumerAsync(stream);
        Assert.Equal(0L, (long)info.NumPending);
        Assert.Equal(0L, (long)info.NumAckPending);
        Assert.Equal(0L, (long)info.NumRedelivered);
        Assert.Equal(garbage.Length + 1L, (long)info.Delivered.ConsumerSeq);
        var all = ReadEvents(events);
        Assert.Contains(all, e => e.Type == "command.completed" && e.Id == "tp");
        Assert.Contains(all, e => e.Type == "command.failed" && e.Id == "u1");
    }

    [Fact]
    public async Task Sigterm_in_the_default_ack_mode_does_not_lose_commands_that_never_started()
    {
        var (stream, subject, args) = await StreamAsync("h8term");
        const int count = 200;
        await PublishAsync(subject, Enumerable.Range(0, count).Select(i => Delay($"t{i}", 1000)));
        var events = Path.Combine(_directory, "term.jsonl");

        using var worker = PipelineProcess.Start([.. args, "--shutdown-timeout-ms", "1000", "--events", events]);
        await FirstStartAsync(worker, events);

        worker.Signal(PipelineProcess.SigTerm);
        await worker.WaitForExitAsync(TimeSpan.FromSeconds(30));

        // Ack before dispatch is at-most-once for a command whose tool started (cut off at the
        // deadline it is not redelivered); one that never started must not be acked.
        var started = ReadEvents(events).Where(e => e.Type == "command.started").Select(e => e.Id).Distinct().Count();
        var info = await ConsumerAsync(stream);
        var stillForThePool = (long)info.NumPending + (long)info.NumAckPending;

        // Every command either started, or is still in the stream for the rest of the pool.
        Assert.True(started + stillForThePool >= count, $"started {started} + left for the pool {stillForThePool} < {count}: {count - started - stillForThePool} acked and never started\n{Describe(worker)}");
    }

    [Fact]
    public async Task The_summary_never_claims_a_redelivery_that_did_not_happen()
    {
        var (_, subject, args) = await StreamAsync("h8sum");
        await PublishAsync(subject, Enumerable.Range(0, 100).Select(i => Delay($"s{i}", 1000)));
        var events = Path.Combine(_directory, "sum.jsonl");

        using var worker = PipelineProcess.Start([.. args, "--shutdown-timeout-ms", "500", "--events", events]);
        await FirstStartAsync(worker, events);

        worker.Signal(PipelineProcess.SigTerm);
        await worker.WaitForExitAsync(TimeSpan.FromSeconds(30));

        if (worker.Stdout.Contains("+ 0 nacked", StringComparison.Ordinal))
        {
            Assert.DoesNotContain("nacked for redelivery", worker.Stdout, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Bind_only_to_a_missing_stream_with_exit_when_idle_is_not_a_success()
    {
        var missing = NatsServerFixture.UniqueName("h8missing");
        using var worker = PipelineProcess.Start(["worker", "--nats", nats.Url, "--stream", missing, "--consumer", "c", "--bind-only", "--exit-when-idle", "1"]);
        var exit = await worker.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.True(exit != 0, $"exit {exit}\n{Describe(worker)}");
        Assert.DoesNotContain("all commands succeeded", worker.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_events_file_on_a_full_disk_stops_the_worker_instead_of_consuming_the_stream()
    {
        if (!File.Exists("/dev/full"))
        {
            return;
        }

        var (stream, subject, args) = await StreamAsync("h8full");
        const int count = 2000;
        await PublishAsync(subject, Enumerable.Range(0, count).Select(i => Noop($"f{i}")));

        using var worker = PipelineProcess.Start([.. args, "--events", "/dev/full", "--exit-when-idle", "3"]);
        var exit = await worker.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.True(exit == 1, $"exit {exit}\n{Describe(worker)}");
        Assert.Contains("error:", worker.Stderr, StringComparison.Ordinal);
        var info = await ConsumerAsync(stream);
        Assert.True((long)info.AckFloor.StreamSeq < count, $"every command was acked with its events dropped\n{Describe(worker)}");
    }

    [Fact]
    public async Task An_events_path_that_cannot_be_created_is_a_usage_error_before_anything_is_pulled()
    {
        var missingDirectory = Path.Combine(_directory, "no-such-dir", "events.jsonl");
        using var worker = PipelineProcess.Start(["worker", "--nats", nats.Url, "--stream", NatsServerFixture.UniqueName("h8evpath"), "--events", missingDirectory, "--exit-when-idle", "1"]);
        var exit = await worker.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.True(exit == 2, $"exit {exit}\n{Describe(worker)}");
        // Checked with the other settings (the file module's plan), before any connection is made.
        Assert.Contains($"'{missingDirectory}' cannot be written: the folder {Path.GetDirectoryName(missingDirectory)} does not exist.", worker.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", worker.Stdout + worker.Stderr, StringComparison.Ordinal); // no stack trace
    }

    [Fact]
    public async Task The_otlp_endpoint_from_the_help_is_accepted()
    {
        // What is checked is the endpoint; 5 s idle leaves the worker room to connect on a loaded machine (1 s was cut short).
        using var worker = PipelineProcess.Start(["worker", "--nats", nats.Url, "--stream", NatsServerFixture.UniqueName("h8otlp"), "--otlp-endpoint", "http://127.0.0.1:4317", "--exit-when-idle", "5"]);
        var exit = await worker.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.DoesNotContain("Unhandled exception", worker.Stdout + worker.Stderr, StringComparison.Ordinal);
        Assert.True(exit == 0, $"exit {exit}\n{Describe(worker)}");
    }

    [Fact]
    public async Task Exit_when_idle_ends_even_when_the_server_is_unreachable()
    {
        using var worker = PipelineProcess.Start(["worker", "--nats", "nats://127.0.0.1:1", "--exit-when-idle", "1"]);
        var exited = true;
        try
        {
            await worker.WaitForExitAsync(TimeSpan.FromSeconds(45));
        }
        catch (TimeoutException)
        {
            exited = false;
        }

        Assert.True(exited, $"still running after 45 s with --exit-when-idle 1\n{Describe(worker)}");
    }

    [Fact]
    public async Task A_server_not_reached_by_the_idle_end_is_said_once_in_one_error_line()
    {
        using var worker = PipelineProcess.Start(["worker", "--nats", $"nats://127.0.0.1:{LoopbackPort.Free()}", "--exit-when-idle", "1"]);
        var exit = await worker.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.True(exit == 1, $"exit {exit}\n{Describe(worker)}");
        // Once: the worker's own log line of the fault is left to the command's error line (which had a trailing space).
        var lines = worker.Stderr.Split('\n');
        var said = Assert.Single(lines, l => l.Contains("was not reached", StringComparison.Ordinal));
        Assert.StartsWith("error: the worker stopped: ", said, StringComparison.Ordinal);
        Assert.DoesNotContain(lines, l => l.EndsWith(' '));
    }

    [Fact]
    public async Task A_creds_file_that_is_not_a_creds_file_is_a_usage_error_naming_the_flag_not_an_unreachable_server()
    {
        var creds = Path.Combine(_directory, "user.creds");
        await File.WriteAllTextAsync(creds, "this is not a JWT and an NKey seed\n");
        using var worker = PipelineProcess.Start(["worker", "--nats", nats.Url, "--nats-creds", creds, "--exit-when-idle", "2"]);

        var exit = await worker.WaitForExitAsync(TimeSpan.FromSeconds(60));

        // The server is up: what is wrong is the file, and the user is told so, as for a missing one.
        Assert.True(exit == 2, $"exit {exit}\n{Describe(worker)}");
        Assert.Contains("--nats-creds", worker.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("unreachable", worker.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("not reached", worker.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_creds_path_to_an_endless_device_is_refused_at_start_without_reading_it_into_memory()
    {
        using var worker = PipelineProcess.Start(["worker", "--nats", nats.Url, "--nats-creds", "/dev/zero", "--exit-when-idle", "2"]);

        // Not long: a worker that reads it grows by about 200 MB a second until it is killed here.
        var exit = await worker.WaitForExitAsync(TimeSpan.FromSeconds(10));

        Assert.True(exit == 2, $"exit {exit}\n{Describe(worker)}");
        Assert.Contains("--nats-creds", worker.Stderr, StringComparison.Ordinal);
        Assert.True(worker.PeakRssBytes < 512L * 1024 * 1024, $"peak RSS {worker.PeakRssBytes / (1024 * 1024)} MiB\n{Describe(worker)}");
    }
}
