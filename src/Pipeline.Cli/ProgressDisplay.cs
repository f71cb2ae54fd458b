using System.Diagnostics;
using Pipeline.Engine;
using Spectre.Console;

namespace Pipeline.Cli;

/// <summary>Shows progress while a run goes on: a live table on a terminal, a plain line a second when piped.</summary>
internal static class ProgressDisplay
{
    private static readonly TimeSpan LiveRefresh = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan PlainRefresh = TimeSpan.FromSeconds(1);

    public static async Task ShowAsync(Task run, PipelineStats stats, Stopwatch clock, bool interactive, TextWriter plainOutput, TimeSpan? plainEvery = null, string title = "pipeline run")
    {
        if (interactive)
        {
            await AnsiConsole.Live(Render(stats, clock, title)).AutoClear(false).StartAsync(async context =>
            {
                while (!run.IsCompleted)
                {
                    await Task.WhenAny(run, Task.Delay(LiveRefresh));
                    context.UpdateTarget(Render(stats, clock, title));
                }
            });
            return;
        }

        while (!run.IsCompleted)
        {
            await Task.WhenAny(run, Task.Delay(plainEvery ?? PlainRefresh));
            if (!run.IsCompleted)
            {
                await plainOutput.WriteLineAsync(PlainLine(stats, clock));
            }
        }
    }

    internal static string PlainLine(PipelineStats stats, Stopwatch clock)
    {
        var b = stats.Blocks;
        return $"progress: done {stats.Completed}, failed {stats.Failed + stats.ClaimFailures}, skipped {stats.Skipped}, unsettled {stats.InFlight}, "
            + $"rate {Rate(stats, clock):0}/s, queued/running claim {Load(b.Claim)} ack {Load(b.AckDecision)} dispatch {Load(b.Dispatch)} emit {Load(b.Emit)}";
    }

    private static string Load(BlockLoad load) => $"{load.Queued}/{load.Running}";

    private static double Rate(PipelineStats stats, Stopwatch clock) =>
        clock.Elapsed.TotalSeconds > 0 ? (stats.Completed + stats.Failed) / clock.Elapsed.TotalSeconds : 0;

    private static Table Render(PipelineStats stats, Stopwatch clock, string title)
    {
        var b = stats.Blocks;
        var table = new Table().Border(TableBorder.Rounded).Title($"[bold]{Markup.Escape(title)}[/]");
        table.AddColumns("done", "failed", "skipped", "unsettled", "rate", "claim q/run", "ack q/run", "dispatch q/run", "emit q/run");
        table.AddRow(
            $"[green]{stats.Completed}[/]",
            $"[red]{stats.Failed + stats.ClaimFailures}[/]",
            $"{stats.Skipped}",
            $"{stats.InFlight}",
            $"{Rate(stats, clock):0}/s",
            Load(b.Claim),
            Load(b.AckDecision),
            Load(b.Dispatch),
            Load(b.Emit));
        return table;
    }
}
