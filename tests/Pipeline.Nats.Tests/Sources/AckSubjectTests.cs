using Pipeline.Nats.Sources;

namespace Pipeline.Nats.Tests.Sources;

public sealed class AckSubjectTests
{
    [Theory]
    [InlineData("$JS.ACK.orders.workers.3.1042.998.1732530000000000000.17", 1042UL, 3UL)]
    [InlineData("$JS.ACK._.ACCHASH.orders.workers.1.7.7.1732530000000000000.0.tok", 7UL, 1UL)]
    [InlineData("$JS.ACK.hub.ACCHASH.orders.workers.2.18446744073709551615.7.1732530000000000000.0", ulong.MaxValue, 2UL)]
    public void Reads_the_stream_sequence_and_the_delivery_count_of_both_forms(string replyTo, ulong sequence, ulong delivered)
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
