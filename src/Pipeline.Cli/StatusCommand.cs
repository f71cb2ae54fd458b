using System.CommandLine;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Pipeline.Modules;
using Pipeline.Storage;

namespace Pipeline.Cli;

/// <summary>
/// <c>pipeline status</c>: what the store the flag selects holds (the SQLite file by default):
/// counts by state, the oldest pending command's age, live claims and dead letters with their
/// reasons, as text or as JSON (<c>--json</c>, a stable shape for scripts, docs/storage.md).
/// Exit 0; 2 for a usage error; 1 when the store cannot be opened or read (one <c>error:</c> line).
/// </summary>
internal static class StatusCommand
{
    /// <summary>The most dead letters and live claims <c>--limit</c> takes.</summary>
    public const int MaxLimit = 10_000;

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        // Reasons and ids come from input: escaped as JSON, but kept readable (no \u0027 for ').
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static System.CommandLine.Command Build(TextWriter stdout, TextWriter stderr, IReadOnlyList<IPipelineModule> modules)
    {
        var offers = modules.Select(m => m.Status).OfType<ModuleStatus>().ToList();
        var arguments = new ModuleArguments([.. offers.Select(o => o.CommandLine)]);
        var limit = PipelineCli.Int("--limit", "Most dead letters (newest first) and live claims (soonest lease expiry first) listed.", 20, 0, MaxLimit);
        var json = new Option<bool>("--json") { Description = "Print one JSON object (the shape docs/storage.md documents) instead of text." };
        var stores = string.Join("; ", offers.Select(o => $"{o.CommandLine.Selector.Name} {o.CommandLine.Selector.HelpName}: {o.Summary}"));
        var status = new System.CommandLine.Command("status", $"Show what the store holds ({stores}): counts by state, the oldest pending command's age, live claims, dead letters with reasons.");
        arguments.AddTo(status);
        status.Options.Add(limit);
        status.Options.Add(json);
        status.SetAction(async (result, token) =>
        {
            if (arguments.Selected(result, out var selectError) is not { } line)
            {
                await stderr.WriteLineAsync($"error: {selectError ?? "no module has a store to show."}");
                return ExitCodes.UsageError;
            }

            var settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
            arguments.Apply(result, line, settings);
            if (line.Check?.Invoke(arguments.Values(result, line, settings, settingsFile: false)) is { Count: > 0 } errors)
            {
                foreach (var error in errors)
                {
                    await stderr.WriteLineAsync($"error: {TerminalText.Escape(error)}");
                }

                return ExitCodes.UsageError;
            }

            var offer = offers.First(o => o.CommandLine == line);
            var section = new ConfigurationBuilder().AddInMemoryCollection(settings).Build().GetSection("Pipeline");
            StoreStatus read;
            try
            {
                read = await offer.ReadAsync(section, result.GetValue(limit), token);
            }
            catch (ModuleRunException ex)
            {
                await stderr.WriteLineAsync($"error: {TerminalText.Escape(ex.Message, 2000)}");
                return ExitCodes.SomeFailed;
            }

            var now = DateTimeOffset.UtcNow;
            await stdout.WriteAsync(result.GetValue(json) ? ToJson(read, now) + Environment.NewLine : ToText(read, now));
            return ExitCodes.Success;
        });
        return status;
    }

    /// <summary>The status as one JSON object, snake_case as the events are; times in UTC (ISO 8601), ages and leases left in seconds.</summary>
    internal static string ToJson(StoreStatus status, DateTimeOffset now)
    {
        var summary = status.Summary;
        var shape = new Dictionary<string, object?>
        {
            ["store"] = status.Kind,
            ["where"] = status.Where,
            ["counts"] = new Dictionary<string, long>
            {
                ["pending"] = summary.Pending,
                ["claimed"] = summary.Claimed,
                ["completed"] = summary.Completed,
                ["dead_lettered"] = summary.DeadLettered,
            },
            ["oldest_pending_age_seconds"] = summary.OldestPendingAge?.TotalSeconds,
            ["live_claims"] = summary.LiveClaims.Select(c => new Dictionary<string, object?>
            {
                ["session_id"] = c.SessionId,
                ["owner"] = c.Owner,
                ["fence"] = c.Fence,
                ["expires_at"] = c.ExpiresAt.UtcDateTime,
                ["expires_in_seconds"] = Math.Round((c.ExpiresAt - now).TotalSeconds, 3),
                ["batches"] = c.Batches,
            }).ToList(),
            ["dead_letters"] = summary.DeadLetters.Select(d => new Dictionary<string, object?>
            {
                ["batch_id"] = d.BatchId,
                ["session_id"] = d.SessionId,
                ["command_id"] = CommandIdOf(d),
                ["sequence"] = d.Sequence,
                ["attempts"] = d.Attempts,
                ["enqueued_at"] = d.EnqueuedAt.UtcDateTime,
                ["reason"] = d.DeadLetterReason,
            }).ToList(),
        };
        return JsonSerializer.Serialize(shape, Json);
    }

    /// <summary>The status as lines for a person; everything from the store (ids, owners, reasons) escaped.</summary>
    internal static string ToText(StoreStatus status, DateTimeOffset now)
    {
        var summary = status.Summary;
        var c = CultureInfo.InvariantCulture;
        var text = new System.Text.StringBuilder();
        text.AppendLine(c, $"store          {status.Kind} {TerminalText.Escape(status.Where)}");
        text.AppendLine(c, $"pending        {summary.Pending}{(summary.OldestPendingAge is { } age ? $" (oldest waiting {Age(age)})" : "")}");
        text.AppendLine(c, $"claimed        {summary.Claimed}");
        text.AppendLine(c, $"completed      {summary.Completed}");
        text.AppendLine(c, $"dead letters   {summary.DeadLettered}");
        if (summary.LiveClaims.Count > 0)
        {
            text.AppendLine(c, $"live claims    ({Listed(summary.LiveClaims.Count, summary.Claimed, "claimed")}, soonest lease expiry first)");
            foreach (var claim in summary.LiveClaims)
            {
                var left = claim.ExpiresAt - now;
                text.AppendLine(c, $"  session {TerminalText.Escape(claim.SessionId, 100)}  owner {TerminalText.Escape(claim.Owner, 100)}  fence {claim.Fence}  lease until {claim.ExpiresAt.UtcDateTime:yyyy-MM-ddTHH:mm:ss.fffZ} ({(left >= TimeSpan.Zero ? $"in {Age(left)}" : $"lapsed {Age(-left)} ago")})  {claim.Batches} batch{(claim.Batches == 1 ? "" : "es")}");
            }
        }

        if (summary.DeadLetters.Count > 0)
        {
            text.AppendLine(c, $"dead letters   ({Listed(summary.DeadLetters.Count, summary.DeadLettered, "dead letters")}, newest first)");
            foreach (var letter in summary.DeadLetters)
            {
                text.AppendLine(c, $"  {TerminalText.Escape(CommandIdOf(letter) ?? $"batch {letter.BatchId}", 100)}  session {TerminalText.Escape(letter.SessionId, 100)}  attempts {letter.Attempts}: {TerminalText.Escape(letter.DeadLetterReason ?? "(no reason)", 500)}");
            }
        }

        return text.ToString();
    }

    private static string Listed(int shown, long total, string what) =>
        shown < total ? string.Create(CultureInfo.InvariantCulture, $"{shown} of {total} {what}; --limit shows more") : string.Create(CultureInfo.InvariantCulture, $"{shown}");

    private static string Age(TimeSpan age) =>
        age.TotalSeconds < 120 ? string.Create(CultureInfo.InvariantCulture, $"{age.TotalSeconds:0.0} s")
        : age.TotalHours < 2 ? string.Create(CultureInfo.InvariantCulture, $"{age.TotalMinutes:0.0} min")
        : string.Create(CultureInfo.InvariantCulture, $"{age.TotalHours:0.0} h");

    // The store keeps the command as its payload; a batch that is not one (enqueued by other code) has no command id.
    private static string? CommandIdOf(QueuedBatch batch)
    {
        try
        {
            return Pipeline.Commands.Command.Parse(batch.Payload.Span).CommandId;
        }
        catch (Exception ex) when (ex is JsonException or ArgumentException or InvalidOperationException or FormatException)
        {
            return null;
        }
    }
}
