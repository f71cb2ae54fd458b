using Pipeline.Nats.Connection;

namespace Pipeline.Nats.Tests.Connection;

/// <summary>NatsConnectionOptions: a password in a server URL is never shown, however it is written; the connect timeout is bounded.</summary>
public sealed class NatsConnectionOptionsTests
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

    [Fact]
    public void A_connect_timeout_is_more_than_0_and_at_most_a_day()
    {
        Assert.Empty(new NatsConnectionOptions { ConnectTimeout = TimeSpan.FromDays(1) }.FindErrors());
        foreach (var refused in new[] { TimeSpan.Zero, TimeSpan.FromDays(1) + TimeSpan.FromMilliseconds(1), TimeSpan.FromDays(50) })
        {
            var error = Assert.Single(new NatsConnectionOptions { ConnectTimeout = refused }.FindErrors());
            Assert.Equal(nameof(NatsConnectionOptions.ConnectTimeout), error.ParamName);
        }
    }
}
