using System.Globalization;
using Pipeline.Engine;
using Pipeline.Events;
using Pipeline.Modules;

namespace Pipeline.Cli;

/// <summary>The end-of-run report: counts per outcome, throughput, latency percentiles.</summary>
internal sealed record RunSummary(
    long Pulled,
    long Completed,
    long Failed,
    long Skipped,
    long ClaimRetries,
    long ClaimFailures,
    long Acked,
    long Nacked,
    long Terminated,
    long SettleErrors,
    long EventsEmitted,
    long EventsDropped,
    IReadOnlyList<PipelineEvent> Failures,
    TimeSpan Elapsed,
    TimeSpan P50,
    TimeSpan P95,
    TimeSpan P99,
    string? StoppedBecause)
{
    /// <summary>Tool runs that started and never ended: a stop cut them off.</summary>
    public long Unfinished { get; init; }

    /// <summary>Failed tool runs whose command was nacked for redelivery: not failures unless the command is given up on later.</summary>
    public long Retried { get; init; }

    /// <summary>Commands a stop nacked before their tool started, so the pool got them at once.</summary>
    public long HandedBack { get; init; }

    /// <summary>From the first pull to the last settle or tool end (the throughput's basis); <see cref="Elapsed"/> when nothing was settled.</summary>
    public TimeSpan Busy { get; init; }

    /// <summary>How many failures the summary lists.</summary>
    public const int MaxListed = 10;

    /// <summary>Nothing failed, nothing was given up on, no settle failed, no event was dropped.</summary>
    public bool AllSucceeded => Unfinished == 0 && Failed == 0 && ClaimFailures == 0 && EventsDropped == 0 && Terminated == 0 && SettleErrors == 0;

    /// <summary>A worker's idle end: what its backend still held (a NATS consumer, by the server's count); null otherwise.</summary>
    public WorkLeft? Left { get; init; }

    /// <summary>Nothing failed here, but the backend still holds work: not "all succeeded".</summary>
    public bool WorkLeft => AllSucceeded && Left is { HoldsWork: true };

    public static RunSummary From(PipelineStats stats, IReadOnlyCollection<PipelineEvent> failures, TimeSpan elapsed) => new(
        stats.Pulled, stats.Completed, stats.Failed, stats.Skipped, stats.ClaimRetries, stats.ClaimFailures,
        stats.Acked, stats.Nacked, stats.Terminated, stats.SettleErrors, stats.EventsEmitted, stats.EventsDropped, [.. failures],
        elapsed, stats.Latency.Percentile(50), stats.Latency.Percentile(95), stats.Latency.Percentile(99), StoppedBecause: null)
    {
        Retried = stats.Retried,
        HandedBack = stats.HandedBack,
        Busy = stats.Busy,
    };

    public async Task WriteAsync(TextWriter output, string commandsPath, string? eventsPath, string verb = "run")
    {
        var c = CultureInfo.InvariantCulture;
        // Throughput over the time there was work: start-up and a worker's idle tail would dilute it.
        var busy = Busy > TimeSpan.Zero ? Busy : Elapsed;
        var seconds = Math.Max(busy.TotalSeconds, 1e-9);
        await output.WriteLineAsync($"pipeline {verb} {TerminalText.Escape(commandsPath)}");
        await output.WriteLineAsync(string.Create(c, $"  completed      {Completed}"));
        await output.WriteLineAsync(string.Create(c, $"  failed         {Failed}"));
        if (Retried > 0)
        {
            await output.WriteLineAsync(string.Create(c, $"  retried        {Retried} failed runs redelivered"));
        }

        await output.WriteLineAsync(string.Create(c, $"  skipped        {Skipped}"));
        await output.WriteLineAsync(string.Create(c, $"  claim retries  {ClaimRetries}"));
        await output.WriteLineAsync(string.Create(c, $"  claim failures {ClaimFailures}"));
        await output.WriteLineAsync(string.Create(c, $"  handles        {Pulled} pulled = {Acked} acked + {Nacked} nacked + {Terminated} terminated + {SettleErrors} settle errors"));
        await output.WriteLineAsync(string.Create(c, $"  throughput     {(Completed + Failed + Retried) / seconds:0} commands/s over {busy.TotalSeconds:0.000} s from the first pull to the last command done ({Elapsed.TotalSeconds:0.000} s in all)"));
        await output.WriteLineAsync(string.Create(c, $"  latency        p50 {Format(P50)}  p95 {Format(P95)}  p99 {Format(P99)}"));
        if (HandedBack > 0)
        {
            await output.WriteLineAsync(string.Create(c, $"  handed back    {HandedBack} not started when the stop came (nacked at once for redelivery)"));
        }

        if (Unfinished > 0)
        {
            await output.WriteLineAsync(string.Create(c, $"  unfinished     {Unfinished} started and cut off by the stop (no result)"));
        }

        if (Left is { } left)
        {
            // Names come from the configuration and the backend: escaped.
            await output.WriteLineAsync($"  {TerminalText.Escape(left.Holder),-15}{TerminalText.Escape(left.Describe())}");
        }

        if (eventsPath is not null)
        {
            await output.WriteLineAsync(string.Create(c, $"  events         {EventsEmitted} written to {TerminalText.Escape(eventsPath)}, {EventsDropped} dropped"));
        }

        foreach (var failure in Failures)
        {
            // Ids and errors come from the input and from remote peers: escaped, never raw.
            var id = failure.CommandId is null ? "(no command)" : TerminalText.Escape(failure.CommandId, 100);
            await output.WriteLineAsync($"  {failure.EventType,-15}{id}: {TerminalText.Escape(failure.Error)}");
        }

        // The list holds command.failed events, those of retried runs too.
        var unlisted = Failed + Retried + ClaimFailures - Failures.Count;
        if (unlisted > 0)
        {
            await output.WriteLineAsync(string.Create(c, $"  ... and {unlisted} more failures (see --events)"));
        }

        await output.WriteLineAsync(
            StoppedBecause is { } why ? $"  result         stopped {why}"
            : WorkLeft ? string.Create(c, $"  result         nothing failed here, but the {TerminalText.Escape(Left!.Holder)} still holds {Left.Held} ({Left.InProgressAs} or {Left.WaitingAs}): {TerminalText.Escape(Left.Hint)}")
            : AllSucceeded ? "  result         all commands succeeded"
            : Failed + ClaimFailures + Terminated > 0 ? "  result         some commands failed"
            : $"  result         no command failed, but {Shortfall()}");
    }

    // What kept a run with no failed command from succeeding (settle errors were reported as failed commands).
    private string Shortfall()
    {
        var c = CultureInfo.InvariantCulture;
        List<string> parts = [];
        if (SettleErrors > 0)
        {
            parts.Add(string.Create(c, $"{SettleErrors} settle error{(SettleErrors == 1 ? "" : "s")} (an ack, nack or terminate the source did not confirm)"));
        }

        if (EventsDropped > 0)
        {
            parts.Add(string.Create(c, $"{EventsDropped} event{(EventsDropped == 1 ? "" : "s")} dropped"));
        }

        if (Unfinished > 0)
        {
            parts.Add(string.Create(c, $"{Unfinished} unfinished"));
        }

        return string.Join(", ", parts);
    }

    private static string Format(TimeSpan value) => value.TotalMilliseconds >= 1
        ? string.Create(CultureInfo.InvariantCulture, $"{value.TotalMilliseconds:0.0} ms")
        : string.Create(CultureInfo.InvariantCulture, $"{value.TotalMicroseconds:0} µs");
}
