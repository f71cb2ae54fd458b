using System.Text.RegularExpressions;

namespace Pipeline.Cli.Tests;

/// <summary>
/// <c>pipeline worker --exit-when-idle</c> after another worker was killed (-9): the idle end says
/// what the consumer still holds and does not exit 0; <c>--exit-when-drained</c> waits for it and
/// runs it. Real processes, a real nats-server, tool runs counted at a local HTTP endpoint.
/// </summary>
[Collection(RealProcesses.Name)]
public sealed class IdleExitProcessTests(NatsServerFixture nats, RunCounter runs, ITestOutputHelper output) : IClassFixture<NatsServerFixture>, IClassFixture<RunCounter>
{
    private static readonly Regex ConsumerLine = new(@"^  consumer +\S+: (\d+) awaiting ack, (\d+) pending", RegexOptions.Multiline);

    [Fact]
    public async Task After_a_worker_is_killed_an_idle_exit_reports_what_awaits_an_ack_with_exit_3_and_exit_when_drained_runs_it_then_exits_0()
    {
        var stream = NatsServerFixture.UniqueName("drain");
        var consumer = $"{stream}_workers";
        await using (var connection = nats.Connect())
        {
            var js = new NatsJSContext(connection);
            await js.CreateStreamAsync(new StreamConfig(stream, [$"{stream}.>"]));
            var ids = Enumerable.Range(0, 200).Select(i => $"dr-{i}").ToList();
            foreach (var id in ids)
            {
                (await js.PublishAsync($"{stream}.c", Encoding.UTF8.GetBytes(runs.Command(id, ms: 100)))).EnsureSuccess();
            }
        }

        // After dispatch: what the killed worker held (running or queued) is redelivered, none is lost.
        // A 20 s ack wait: the killed worker's messages come back 13 to 20 s after the kill (renewed
        // every third of it), long after the second worker's 2 s idle end, even when a machine busy
        // with the other test projects takes seconds to start it (with 10 s, seen: back first).
        List<string> args =
        [
            "worker", "--nats", nats.Url, "--stream", stream, "--subjects", $"{stream}.>", "--consumer", consumer,
            "--ack-mode", "after-dispatch", "--ack-wait-ms", "20000", "--dispatch-parallelism", "8", "--tool-retries", "0",
        ];
        using (var killed = PipelineProcess.Start(args))
        {
            var started = Stopwatch.StartNew();
            while (runs.Total < 20)
            {
                Assert.True(started.Elapsed < TimeSpan.FromSeconds(30) && !killed.HasExited, $"the first worker ran {runs.Total}\n{killed.Stderr}");
                await Task.Delay(10);
            }

            killed.Signal(PipelineProcess.SigKill);
            await killed.WaitForExitAsync(TimeSpan.FromSeconds(10));
        }

        var ranBeforeTheKill = runs.Total;
        var held = await ConsumerAsync(stream, consumer);
        output.WriteLine($"killed after {ranBeforeTheKill} runs; the consumer holds {held.NumAckPending} awaiting ack, {held.NumPending} pending");
        Assert.True(held.NumAckPending > 0, "the killed worker held nothing");

        using (var idle = PipelineProcess.Start([.. args, "--exit-when-idle", "2"]))
        {
            var exit = await idle.WaitForExitAsync(TimeSpan.FromSeconds(30));
            output.WriteLine($"idle worker: exit {exit}\n{idle.Stdout}\n{idle.Stderr}");
            Assert.True(exit == 3, $"exit {exit}\n{idle.Stdout}\n{idle.Stderr}");
            var line = ConsumerLine.Match(idle.Stdout);
            Assert.True(line.Success, idle.Stdout);
            Assert.True(long.Parse(line.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) > 0, idle.Stdout);
            Assert.Contains("result         nothing failed here, but the consumer still holds", idle.Stdout, StringComparison.Ordinal);
            // The NATS module's hint: its flag that waits for the rest.
            Assert.Contains("pending): run a worker again, or use --exit-when-drained\n", idle.Stdout, StringComparison.Ordinal);
            Assert.DoesNotContain("all commands succeeded", idle.Stdout, StringComparison.Ordinal);
        }

        using (var draining = PipelineProcess.Start([.. args, "--exit-when-idle", "2", "--exit-when-drained", "40"]))
        {
            var exit = await draining.WaitForExitAsync(TimeSpan.FromSeconds(90));
            output.WriteLine($"draining worker: exit {exit}\n{draining.Stdout}\n{draining.Stderr}");
            Assert.True(exit == 0, $"exit {exit}\n{draining.Stdout}\n{draining.Stderr}");
            Assert.Contains("result         all commands succeeded", draining.Stdout, StringComparison.Ordinal);
            Assert.Matches(@"consumer +\S+: 0 awaiting ack, 0 pending", draining.Stdout);
        }

        var left = await ConsumerAsync(stream, consumer);
        Assert.Equal((0L, 0UL), ((long)left.NumAckPending, left.NumPending));
        var never = Enumerable.Range(0, 200).Select(i => $"dr-{i}").Where(id => runs.Of(id) == 0).ToList();
        Assert.True(never.Count == 0, $"{never.Count} never ran, e.g. {string.Join(", ", never.Take(5))}");
        Assert.True(runs.Total > ranBeforeTheKill, "the draining worker ran nothing");
    }

    private async Task<ConsumerInfo> ConsumerAsync(string stream, string consumer)
    {
        await using var connection = nats.Connect();
        return (await new NatsJSContext(connection).GetConsumerAsync(stream, consumer)).Info;
    }
}
