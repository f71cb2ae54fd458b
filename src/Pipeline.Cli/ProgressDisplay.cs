using System.Diagnostics;
using Pipeline.Engine;
using Spectre.Console;

namespace Pipeline.Cli;

/// <summary>Shows progress while a run goes on: a live table on a terminal, a plain line a second when piped.</summary>
internal static class ProgressDisplay
{
    private static readonly TimeSpan LiveRefresh = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan PlainRefresh = TimeSpan.FromSeconds(1);

    public static async Task ShowAsync(Task run, PipelineStats stats, Stopwatch clock, bool interactive, TextWriter plainOutput)
    {
        if (interactive)
        {
            await AnsiConsole.Live(Render(stats, clock)).AutoClear(false).StartAsync(async context =>
            {
                while (!run.IsCompleted)
                {
                    await Task.WhenAny(run, Task.Delay(LiveRefresh));
                    context.UpdateTarget(Render(stats, clock));
                }
            });
            return;
        }

        while (!run.IsCompleted)
        {
            await Task.WhenAny(run, Task.Delay(PlainRefresh));
            if (!run.IsCompleted)
            {
                await plainOutput.WriteLineAsync(PlainLine(stats, clock));
            }
        }
    }

    internal static string PlainLine(PipelineStats stats, Stopwatch clock)
    {
        var q = stats.QueueDepths;
        return $"progress: done {stats.Completed}, failed {stats.Failed + stats.ClaimFailures}, skipped {stats.Skipped}, in flight {stats.InFlight}, "
            + $"rate {Rate(stats, clock):0}/s, queues claim {q.Claim} ack {q.AckDecision} dispatch {q.Dispatch} emit {q.Emit}";
    }

    private static double Rate(PipelineStats stats, Stopwatch clock) =>
        clock.Elapsed.TotalSeconds > 0 ? (stats.Completed + stats.Failed) / clock.Elapsed.TotalSeconds : 0;

    private static Table Render(PipelineStats stats, Stopwatch clock)
    {
        var q = stats.QueueDepths;
        var table = new Table().Border(TableBorder.Rounded).Title("[bold]pipeline run[/]");
        table.AddColumns("done", "failed", "skipped", "in flight", "rate", "claim q", "ack q", "dispatch q", "emit q");
        table.AddRow(
            $"[green]{stats.Completed}[/]",
            $"[red]{stats.Failed + stats.ClaimFailures}[/]",
            $"{stats.Skipped}",
            $"{stats.InFlight}",
            $"{Rate(stats, clock):0}/s",
            $"{q.Claim}",
            $"{q.AckDecision}",
            $"{q.Dispatch}",
            $"{q.Emit}");
        return table;
    }
}
