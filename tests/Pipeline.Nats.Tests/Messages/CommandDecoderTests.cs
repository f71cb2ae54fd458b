using Pipeline.Nats.Messages;

namespace Pipeline.Nats.Tests.Messages;

/// <summary>CommandDecoder: whatever a message body holds, decoding is a command or a claim failure, never an exception.</summary>
public sealed class CommandDecoderTests
{
    /// <summary>Whatever the body, decoding is a claim or a claim failure, never an exception out of <c>NextAsync</c> (which would strand the handle).</summary>
    [Theory]
    [InlineData("")]
    [InlineData("null")]
    [InlineData("[]")]
    [InlineData("\"x\"")]
    [InlineData("{\"command_id\":\"a\",\"tool_kind\":\"noop\",\"step\":\"s\",\"execution_id\":1,\"attempts\":1e400}")]
    [InlineData("{\"command_id\":\"a\",\"tool_kind\":\"noop\",\"step\":\"s\",\"execution_id\":99999999999999999999999}")]
    [InlineData("{\"command_id\":\"a\",\"tool_kind\":\"noop\",\"step\":\"s\",\"execution_id\":1,\"attempts\":2147483647}")]
    [InlineData("{\"command_id\":\"a\",\"tool_kind\":\"noop\",\"step\":\"s\",\"execution_id\":1,\"input\":{\"a\":")]
    public void Any_body_decodes_to_an_outcome_without_throwing(string body)
    {
        var message = new NatsDeliveredMessage("s.c", Encoding.UTF8.GetBytes(body), null, 5, 3);
        var outcome = CommandDecoder.Instance.Decode(message);
        Assert.True(outcome.Command is not null || outcome.Reason is not null);
    }

    [Fact]
    public void A_body_with_invalid_utf8_or_deep_nesting_decodes_to_an_outcome_without_throwing()
    {
        byte[][] bodies =
        [
            [.. "{\"command_id\":\""u8, 0xFF, 0xFE, .. "\",\"tool_kind\":\"noop\",\"step\":\"s\",\"execution_id\":1}"u8],
            Encoding.UTF8.GetBytes("{\"command_id\":\"a\",\"tool_kind\":\"noop\",\"step\":\"s\",\"execution_id\":1,\"input\":" + new string('[', 5000) + new string(']', 5000) + "}"),
            [0xEF, 0xBB, 0xBF, .. "{\"command_id\":\"a\",\"tool_kind\":\"noop\",\"step\":\"s\",\"execution_id\":1}"u8],
        ];
        foreach (var body in bodies)
        {
            var outcome = CommandDecoder.Instance.Decode(new NatsDeliveredMessage("s.c", body, null, 5, 1));
            Assert.True(outcome.Command is not null || outcome.Reason is not null);
        }
    }

    /// <summary>A delivery count near the top of ulong must not overflow the attempts.</summary>
    [Fact]
    public void A_huge_delivery_count_caps_the_attempts()
    {
        var body = Encoding.UTF8.GetBytes("{\"command_id\":\"a\",\"tool_kind\":\"noop\",\"step\":\"s\",\"execution_id\":1,\"input\":{},\"attempts\":2147483000}");
        var outcome = CommandDecoder.Instance.Decode(new NatsDeliveredMessage("s.c", body, null, 5, ulong.MaxValue));
        Assert.NotNull(outcome.Command);
        Assert.True(outcome.Command!.Attempts > 0);
    }
}
