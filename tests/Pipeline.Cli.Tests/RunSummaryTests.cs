namespace Pipeline.Cli.Tests;

/// <summary>The summary's result line names what kept a run from succeeding.</summary>
public sealed class RunSummaryTests
{
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
}
