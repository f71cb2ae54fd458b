using Pipeline.Modules;

namespace Pipeline.Cli.Tests;

/// <summary>The summary's result line names what kept a run from succeeding.</summary>
public sealed class RunSummaryTests
{
    // What the NATS module reports at an idle end: a consumer's messages awaiting an ack and pending.
    private static WorkLeft Consumer(long awaitingAck, long pending) =>
        new("consumer", "pool", awaitingAck, pending, Redelivered: 0) { InProgressAs = "awaiting ack", WaitingAs = "pending", Hint = "run a worker again, or use --exit-when-drained" };

    // What a store module reports: its own hint, no NATS flag.
    private static WorkLeft Store(long claimed, long pending) =>
        new("store", "/data/pipeline.db", claimed, pending, Redelivered: 0) { InProgressAs = "claimed by other workers", WaitingAs = "pending", Hint = "run a worker again (it takes over a stopped worker's claims once their leases lapse)" };

    private static RunSummary Make(long failed = 0, long settleErrors = 0, long dropped = 0, long unfinished = 0) =>
        new(Pulled: 10, Completed: 10 - failed, Failed: failed, Skipped: 0, ClaimRetries: 0, ClaimFailures: 0, Acked: 10 - settleErrors, Nacked: 0, Terminated: 0,
            SettleErrors: settleErrors, EventsEmitted: 30, EventsDropped: dropped, Failures: [], Elapsed: TimeSpan.FromSeconds(1), P50: TimeSpan.Zero, P95: TimeSpan.Zero, P99: TimeSpan.Zero, StoppedBecause: null)
        {
            Unfinished = unfinished,
        };

    private static async Task<string> ResultLine(RunSummary summary)
    {
        using var output = new StringWriter();
        await summary.WriteAsync(output, "commands.jsonl", null);
        return output.ToString().Split('\n').Single(line => line.StartsWith("  result", StringComparison.Ordinal)).TrimEnd('\r');
    }

    [Fact]
    public async Task A_failed_command_is_some_commands_failed() =>
        Assert.Equal("  result         some commands failed", await ResultLine(Make(failed: 1)));

    [Fact]
    public async Task A_settle_error_alone_is_named_not_called_a_failed_command() =>
        Assert.Equal("  result         no command failed, but 1 settle error (an ack, nack or terminate the source did not confirm)", await ResultLine(Make(settleErrors: 1)));

    [Fact]
    public async Task Every_shortfall_is_listed() =>
        Assert.Equal("  result         no command failed, but 2 settle errors (an ack, nack or terminate the source did not confirm), 3 events dropped, 4 unfinished", await ResultLine(Make(settleErrors: 2, dropped: 3, unfinished: 4)));

    [Fact]
    public async Task A_clean_run_succeeds() =>
        Assert.Equal("  result         all commands succeeded", await ResultLine(Make()));

    [Fact]
    public async Task An_idle_end_with_work_left_on_the_consumer_says_how_much_and_is_not_all_succeeded()
    {
        var summary = Make() with { Left = Consumer(1104, 6) };
        using var output = new StringWriter();
        await summary.WriteAsync(output, "nats://127.0.0.1:4222", null, verb: "worker");

        Assert.True(summary.WorkLeft);
        Assert.Contains("  consumer       pool: 1104 awaiting ack, 6 pending\n", output.ToString(), StringComparison.Ordinal);
        Assert.Equal("  result         nothing failed here, but the consumer still holds 1110 (awaiting ack or pending): run a worker again, or use --exit-when-drained", await ResultLine(summary));
    }

    [Fact]
    public async Task An_idle_end_with_work_left_in_a_store_ends_with_the_stores_hint_and_never_names_a_nats_flag()
    {
        var summary = Make() with { Left = Store(2, 3) };

        Assert.True(summary.WorkLeft);
        var line = await ResultLine(summary);
        Assert.Equal("  result         nothing failed here, but the store still holds 5 (claimed by other workers or pending): run a worker again (it takes over a stopped worker's claims once their leases lapse)", line);
        Assert.DoesNotContain("--exit-when-drained", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_backend_that_gives_no_hint_is_told_to_run_a_worker_again() =>
        Assert.EndsWith(": run a worker again", await ResultLine(Make() with { Left = new WorkLeft("queue", "q", 1, 0, 0) }), StringComparison.Ordinal);

    [Fact]
    public async Task An_idle_end_with_nothing_left_on_the_consumer_succeeds_and_a_failure_still_wins_over_work_left()
    {
        var drained = Make() with { Left = Consumer(0, 0) };
        Assert.False(drained.WorkLeft);
        Assert.Equal("  result         all commands succeeded", await ResultLine(drained));

        var failed = Make(failed: 1) with { Left = Consumer(3, 0) };
        Assert.False(failed.WorkLeft);
        Assert.Equal("  result         some commands failed", await ResultLine(failed));
    }
}
