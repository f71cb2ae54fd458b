using System.Text.Json;
using Pipeline.Commands;

namespace Pipeline.Nats.Messages;

/// <summary>
/// The body is a <see cref="Command"/> in the NoETL wire format. Its <c>attempts</c> grows with the
/// delivery count (<c>attempts + NumDelivered - 1</c>), so the pipeline's <c>MaxAttempts</c>
/// counts JetStream redeliveries.
/// </summary>
public sealed class CommandDecoder : INatsMessageDecoder
{
    /// <summary>The shared instance.</summary>
    public static CommandDecoder Instance { get; } = new();

    /// <inheritdoc/>
    public ClaimOutcome Decode(in NatsDeliveredMessage message)
    {
        Command command;
        try
        {
            command = Command.Parse(message.Data.Span);
        }
        catch (JsonException ex)
        {
            return ClaimOutcome.Failed($"stream sequence {message.StreamSequence} (subject {message.Subject}): malformed command: {Trim(ex.Message)}");
        }

        var redeliveries = message.NumDelivered > 1 ? (int)Math.Min(message.NumDelivered - 1, int.MaxValue / 2) : 0;
        return ClaimOutcome.Claimed(redeliveries == 0 ? command : command with { Attempts = (int)Math.Min((long)command.Attempts + redeliveries, int.MaxValue) });
    }

    // The serializer's own position ("LineNumber: 0 | BytePositionInLine: 3") refers to the body, which has no lines.
    private static string Trim(string message)
    {
        var position = message.IndexOf(" | LineNumber:", StringComparison.Ordinal);
        return position < 0 ? message : message[..position];
    }
}
