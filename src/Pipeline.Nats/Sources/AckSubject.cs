namespace Pipeline.Nats.Sources;

/// <summary>
/// Reads the stream sequence and the delivery count (and, for a claimer, the consumer sequence) from a JetStream message's reply subject
/// (<c>$JS.ACK.&lt;stream&gt;.&lt;consumer&gt;.&lt;delivered&gt;.&lt;stream seq&gt;.&lt;consumer seq&gt;.&lt;ts&gt;.&lt;pending&gt;</c>,
/// or the form with domain and account hash before the stream, ADR-15) without allocating.
/// NATS.Net's <c>Metadata</c> splits the subject into strings and builds a record: about 560 bytes
/// per message, the largest allocation of the source after decoding.
/// </summary>
internal static class AckSubject
{
    private const int V1Tokens = 9;
    private const int V2Tokens = 12;

    /// <summary>False when <paramref name="replyTo"/> is not an ack subject this reads; the caller then asks NATS.Net.</summary>
    public static bool TryParse(string? replyTo, out ulong streamSequence, out ulong numDelivered)
    {
        streamSequence = 0;
        numDelivered = 0;
        Span<Range> tokens = stackalloc Range[V2Tokens + 1];
        var first = FirstNumber(replyTo, tokens);
        return first > 0
            && TryRead(replyTo!, tokens[first], out numDelivered)
            && TryRead(replyTo!, tokens[first + 1], out streamSequence);
    }

    /// <summary>The consumer sequence (the token after the stream sequence); false when <paramref name="replyTo"/> is not an ack subject this reads.</summary>
    public static bool TryParseConsumerSequence(string? replyTo, out ulong consumerSequence)
    {
        consumerSequence = 0;
        Span<Range> tokens = stackalloc Range[V2Tokens + 1];
        var first = FirstNumber(replyTo, tokens);
        return first > 0 && TryRead(replyTo!, tokens[first + 2], out consumerSequence);
    }

    /// <summary>The index of the delivery count's token, or -1 when <paramref name="replyTo"/> is not an ack subject.</summary>
    private static int FirstNumber(string? replyTo, Span<Range> tokens)
    {
        if (replyTo is null || !replyTo.StartsWith("$JS.ACK.", StringComparison.Ordinal))
        {
            return -1;
        }

        // As NATS.Net: 9 tokens (v1), or 11 to 12 (v2, the last one optional).
        return replyTo.AsSpan().Split(tokens, '.') switch
        {
            V1Tokens => 4,
            V2Tokens - 1 or V2Tokens => 6,
            _ => -1,
        };
    }

    private static bool TryRead(string replyTo, Range token, out ulong value) =>
        ulong.TryParse(replyTo.AsSpan(token), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out value);
}
