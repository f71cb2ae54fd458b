using System.Text.RegularExpressions;

namespace Pipeline.Cli.Tests;

/// <summary>
/// Real <c>pipeline worker</c> processes with <c>--kv-claimer</c> against a real nats-server (their
/// own: these tests kill it), counting tool runs at a local HTTP endpoint.
/// </summary>
[Collection(RealProcesses.Name)]
public sealed partial class KvClaimerProcessTests(NatsServerFixture nats, RunCounter runs, ITestOutputHelper output) : IClassFixture<NatsServerFixture>, IClassFixture<RunCounter>, IAsyncLifetime
{
    public Task InitializeAsync() => nats.StartAsync();

    public Task DisposeAsync() => nats.StartAsync(); // a test that killed it leaves it running

    private async Task<(string Stream, string Consumer, List<string> Args)> StreamAsync(string prefix)
    {
        var stream = NatsServerFixture.UniqueName(prefix);
        await using var connection = nats.Connect();
        await new NatsJSContext(connection).CreateStreamAsync(new StreamConfig(stream, [$"{stream}.>"]));
        var consumer = $"{stream}_workers";
        return (stream, consumer, ["worker", "--nats", nats.Url, "--stream", stream, "--subjects", $"{stream}.>", "--consumer", consumer]);
    }

    private async Task<ConsumerInfo> ConsumerAsync(string stream, string consumer)
    {
        await using var connection = nats.Connect();
        return (await new NatsJSContext(connection).GetConsumerAsync(stream, consumer)).Info;
    }

    private static long Summary(PipelineProcess worker, string counter)
    {
        var match = Regex.Match(worker.Stdout, $@"^  {counter} +(\d+)", RegexOptions.Multiline);
        return match.Success ? long.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : -1;
    }

    /// <summary>
    /// The issue's case: nats-server killed (-9) and restarted under a worker with the KV claimer.
    /// The kill loses acks (and, with the consumer's state not yet flushed, some of what was
    /// delivered), so commands that ran to their end come back: at once after the restart, or
    /// after the ack wait. A second worker, started as the server is back, takes its share of
    /// them; it never ran them (its recent-id cache is empty), and only their claim records, which
    /// say completed, keep them from running again. Counted as tool runs, not events.
    /// </summary>
    [Fact]
    public async Task A_server_killed_and_restarted_mid_run_runs_no_command_twice_and_loses_none_with_the_kv_claimer()
    {
        var (stream, consumer, args) = await StreamAsync("kvkill");
        var ids = Enumerable.Range(0, 3000).Select(i => $"kvk-{i}").ToList();
        await nats.PublishAsync($"{stream}.c", [.. ids.Select(id => runs.Command(id, ms: 2))]);
        string[] knobs = ["--kv-claimer", "--kv-bucket", NatsServerFixture.UniqueName("claims"), "--ack-wait-ms", "10000", "--tool-retries", "0", "--claim-parallelism", "32"];

        using var first = PipelineProcess.Start([.. args, .. knobs, "--exit-when-idle", "3"]);
        var started = Stopwatch.StartNew();
        while (runs.Total < ids.Count / 3)
        {
            Assert.True(started.Elapsed < TimeSpan.FromSeconds(30) && !first.HasExited, $"the first worker ran {runs.Total}\n{first.Stdout}\n{first.Stderr}");
            await Task.Delay(5);
        }

        await nats.KillAsync();
        var killedAt = runs.Total;
        await Task.Delay(TimeSpan.FromSeconds(1)); // the outage itself
        await nats.StartAsync();

        // Until the consumer holds nothing: what the kill left awaiting an ack comes back after the ack wait.
        using var second = PipelineProcess.Start([.. args, .. knobs, "--exit-when-idle", "3", "--exit-when-drained", "40"]);
        var firstExit = await first.WaitForExitAsync(TimeSpan.FromSeconds(60));
        var secondExit = await second.WaitForExitAsync(TimeSpan.FromSeconds(60));
        output.WriteLine($"killed at {killedAt} runs, {started.Elapsed} in all\nfirst worker: exit {firstExit}\n{first.Stdout}\n{first.Stderr}\nsecond worker: exit {secondExit}\n{second.Stdout}\n{second.Stderr}");

        var twice = ids.Where(id => runs.Of(id) > 1).ToList();
        var never = ids.Where(id => runs.Of(id) == 0).ToList();
        Assert.True(twice.Count == 0, $"{twice.Count} ran more than once, e.g. {string.Join(", ", twice.Take(5))}");
        Assert.True(never.Count == 0, $"{never.Count} never ran, e.g. {string.Join(", ", never.Take(5))}");
        Assert.True(secondExit == 0, $"exit {secondExit}\n{second.Stdout}\n{second.Stderr}");
        // The case happened: completed commands came back to the worker that had not run them.
        Assert.True(Summary(second, "skipped") > 0, "no completed command came back to the second worker: nothing was tested");
        var drained = await ConsumerAsync(stream, consumer);
        Assert.Equal((0L, 0UL), ((long)drained.NumAckPending, drained.NumPending));
    }
}
