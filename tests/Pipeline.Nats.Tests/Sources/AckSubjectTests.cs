namespace Pipeline.Nats.Tests.Sources;

/// <summary>
/// AckSubject: the stream sequence and delivery count read from a JetStream ack subject, in every
/// form of ADR-15 (with a domain and an account hash, with and without the random token); any
/// other shape is left to the client.
/// </summary>
public sealed class AckSubjectTests
{
    [Theory]
    [InlineData("$JS.ACK.orders.workers.3.1042.998.1732530000000000000.17", 1042UL, 3UL)]
    [InlineData("$JS.ACK._.ACCHASH.orders.workers.1.7.7.1732530000000000000.0.tok", 7UL, 1UL)]
    [InlineData("$JS.ACK.hub.ACCHASH.orders.workers.2.18446744073709551615.7.1732530000000000000.0", ulong.MaxValue, 2UL)]
    [InlineData("$JS.ACK.dom.ABCDEFGHIJKLMNOPQRSTUVWXYZ234567ABCDEFGHIJKLMNOPQRSTUV.s.c.4.99.12.1732530000000000000.3.r4nd", 99UL, 4UL)]
    [InlineData("$JS.ACK._.ACC.s.c.1.1.1.1732530000000000000.0", 1UL, 1UL)]
    [InlineData("$JS.ACK.s.c.1.18446744073709551615.1.1.0", ulong.MaxValue, 1UL)]
    public void Reads_the_stream_sequence_and_the_delivery_count_of_every_form(string replyTo, ulong sequence, ulong delivered)
    {
        Assert.True(AckSubject.TryParse(replyTo, out var readSequence, out var readDelivered));
        Assert.Equal(sequence, readSequence);
        Assert.Equal(delivered, readDelivered);
    }

    [Theory]
    [InlineData("$JS.ACK.orders.workers.3.1042.998.1732530000000000000.17", 998UL)]
    [InlineData("$JS.ACK._.ACCHASH.orders.workers.1.7.5.1732530000000000000.0.tok", 5UL)]
    [InlineData("$JS.ACK.hub.ACCHASH.orders.workers.2.7.18446744073709551615.1732530000000000000.0", ulong.MaxValue)]
    public void Reads_the_consumer_sequence_of_both_forms(string replyTo, ulong consumerSequence)
    {
        Assert.True(AckSubject.TryParseConsumerSequence(replyTo, out var read));
        Assert.Equal(consumerSequence, read);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("_INBOX.abc")]
    [InlineData("$JS.ACK.orders.workers.3.1042.998.17")]
    [InlineData("$JS.ACK.orders.workers.x.1042.998.1732530000000000000.17")]
    [InlineData("$JS.ACK.orders.workers.3.-1.998.1732530000000000000.17")]
    [InlineData("$JS.ACK.a.b.c.d.1.2.3.4.5.6.7")]
    [InlineData("$JS.ACK.s.c.1.2.3.4")] // 8 tokens
    [InlineData("$JS.ACK.s.c.1.2.3.4.5.6")] // 10 tokens
    [InlineData("$JS.ACK.a.b.s.c.1.2.3.4.5.6.7.8")] // 14 tokens
    [InlineData("$JS.ACK.s.c.+1.2.3.4.5")]
    [InlineData("$JS.ACK.s.c.1.18446744073709551616.3.4.5")]
    [InlineData("$JS.ACK.s.c. 1.2.3.4.5")]
    [InlineData("$js.ack.s.c.1.2.3.4.5")]
    public void Anything_else_is_left_to_the_client(string? replyTo)
    {
        Assert.False(AckSubject.TryParse(replyTo, out _, out _));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("_INBOX.abc")]
    [InlineData("$JS.ACK.orders.workers.3.1042.998.17")]
    [InlineData("$JS.ACK.orders.workers.3.1042.x.1732530000000000000.17")]
    [InlineData("$JS.ACK.a.b.c.d.1.2.3.4.5.6.7")]
    public void No_consumer_sequence_is_read_from_anything_else(string? replyTo)
    {
        Assert.False(AckSubject.TryParseConsumerSequence(replyTo, out _));
    }
}
