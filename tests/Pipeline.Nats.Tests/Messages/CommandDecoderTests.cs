using System.Text;
using Pipeline.Nats.Connection;
using Pipeline.Nats.Messages;
using Pipeline.Nats.Sources;

namespace Pipeline.Nats.Tests.Review;

/// <summary>review8: unit-level edges of the NATS integration.</summary>
public sealed class Review8UnitTests
{
    /// <summary>An unescaped '@' in a password: the user info ends at the last '@' before the host, not the first.</summary>
    [Theory]
    [InlineData("nats://user:p@ss@host:4222", "p@ss", "nats://***@host:4222")]
    [InlineData("nats://user:a@b@c@host:4222,nats://u2:x@y@other:4222", "b@c", "nats://***@host:4222,nats://***@other:4222")]
    [InlineData("tls://tok@en@host", "en", "tls://***@host")]
    public void Redact_hides_a_password_that_contains_an_at_sign(string url, string secret, string expected)
    {
        var shown = NatsConnectionOptions.Redact(url);
        Assert.DoesNotContain(secret, shown, StringComparison.Ordinal);
        Assert.Equal(expected, shown);
        Assert.DoesNotContain(secret, new NatsConnectionOptions { Url = url }.DisplayUrl, StringComparison.Ordinal);
    }

    [Fact]
    public void A_url_Validate_refuses_names_it_without_a_password_that_contains_an_at_sign()
    {
        var options = new NatsConnectionOptions { Url = "nats://user:s3cr@t!@host:4222,ftp://x" };
        var ex = Assert.ThrowsAny<ArgumentException>(options.Validate);
        Assert.DoesNotContain("s3cr", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("t!", ex.Message, StringComparison.Ordinal);
    }

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

    /// <summary>ADR-15's forms, including a domain and an account hash (12 tokens) and without the random token (11).</summary>
    [Theory]
    [InlineData("$JS.ACK.dom.ABCDEFGHIJKLMNOPQRSTUVWXYZ234567ABCDEFGHIJKLMNOPQRSTUV.s.c.4.99.12.1732530000000000000.3.r4nd", 99UL, 4UL)]
    [InlineData("$JS.ACK._.ACC.s.c.1.1.1.1732530000000000000.0", 1UL, 1UL)]
    [InlineData("$JS.ACK.s.c.1.18446744073709551615.1.1.0", ulong.MaxValue, 1UL)]
    public void Reads_the_domain_and_account_hash_forms(string replyTo, ulong sequence, ulong delivered)
    {
        Assert.True(AckSubject.TryParse(replyTo, out var s, out var d));
        Assert.Equal(sequence, s);
        Assert.Equal(delivered, d);
    }

    [Theory]
    [InlineData("$JS.ACK.s.c.1.2.3.4")] // 8 tokens
    [InlineData("$JS.ACK.s.c.1.2.3.4.5.6")] // 10 tokens
    [InlineData("$JS.ACK.a.b.s.c.1.2.3.4.5.6.7.8")] // 14 tokens
    [InlineData("$JS.ACK.s.c.+1.2.3.4.5")]
    [InlineData("$JS.ACK.s.c.1.18446744073709551616.3.4.5")]
    [InlineData("$JS.ACK.s.c. 1.2.3.4.5")]
    [InlineData("$js.ack.s.c.1.2.3.4.5")]
    public void Shapes_that_are_not_ack_subjects_are_left_to_the_client(string replyTo)
    {
        Assert.False(AckSubject.TryParse(replyTo, out _, out _));
    }
}
