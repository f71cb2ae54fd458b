using System.CommandLine;
using Pipeline.Cli.Nats;

namespace Pipeline.Cli.Tests.Nats;

public sealed class NatsConnectionArgumentsTests
{
    private static (ParseResult Result, NatsConnectionArguments Arguments) Parse(string[] args, Dictionary<string, string>? environment = null)
    {
        var arguments = new NatsConnectionArguments(name => environment is not null && environment.TryGetValue(name, out var value) ? value : null);
        var command = new Command("enqueue");
        arguments.AddTo(command);
        var root = new RootCommand { command };
        return (root.Parse(["enqueue", .. args]), arguments);
    }

    [Fact]
    public void Flags_become_the_connection_options()
    {
        var (result, arguments) = Parse(["--nats", "nats://127.0.0.1:4333", "--nats-user", "u", "--nats-password", "p", "--nats-token", "t", "--tls-require"]);

        Assert.Empty(result.Errors);
        var options = arguments.Read(result);
        Assert.Equal("nats://127.0.0.1:4333", options.Url);
        Assert.Equal(("u", "p", "t", true), (options.User, options.Password, options.Token, options.RequireTls));
    }

    [Fact]
    public void Environment_fills_what_the_flags_leave_out_and_a_flag_wins()
    {
        var environment = new Dictionary<string, string>
        {
            [NatsConnectionArguments.UrlVariable] = "nats://127.0.0.1:4999",
            [NatsConnectionArguments.PasswordVariable] = "from-env",
            [NatsConnectionArguments.TokenVariable] = "token-env",
        };

        var (fromEnv, arguments) = Parse(["--nats-user", "u"], environment);
        var options = arguments.Read(fromEnv);
        Assert.Equal(("nats://127.0.0.1:4999", "from-env", "token-env"), (options.Url, options.Password, options.Token));

        var (flagged, again) = Parse(["--nats", "nats://h:1", "--nats-user", "u", "--nats-password", "flag"], environment);
        Assert.Equal(("nats://h:1", "flag"), (again.Read(flagged).Url, again.Read(flagged).Password));
    }

    [Theory]
    [InlineData(new string[0], "--nats is required")]
    [InlineData(new[] { "--nats", "http://user:hunter2@h:80" }, "--nats 'http://***@h:80' is not a NATS server URL")]
    [InlineData(new[] { "--nats", "nats://h:1", "--nats-password", "hunter2" }, "--nats-password (or PIPELINE_NATS_PASSWORD) needs --nats-user")]
    [InlineData(new[] { "--nats", "nats://h:1", "--tls-cert", "/etc/hostname" }, "--tls-cert needs --tls-key")]
    [InlineData(new[] { "--nats", "nats://h:1", "--tls-key", "/etc/hostname" }, "--tls-key needs --tls-cert")]
    [InlineData(new[] { "--nats", "nats://h:1", "--tls-cert", "/no/c.pem", "--tls-key", "/etc/hostname" }, "--tls-cert '/no/c.pem' does not exist")]
    [InlineData(new[] { "--nats", "nats://h:1", "--nats-creds", "/no/such.creds" }, "--nats-creds '/no/such.creds' does not exist")]
    [InlineData(new[] { "--nats", "nats://h:1", "--nats-nkey", "/no/such.nk" }, "--nats-nkey '/no/such.nk' does not exist")]
    [InlineData(new[] { "--nats", "nats://h:1", "--tls-ca", "/no/ca.pem" }, "--tls-ca '/no/ca.pem' does not exist")]
    public void A_setting_that_cannot_work_is_a_parse_error_naming_its_option_and_no_secret(string[] args, string expected)
    {
        var (result, arguments) = Parse(args);

        var error = Assert.Single(result.Errors).Message;
        Assert.Contains(expected, error, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", error, StringComparison.Ordinal);
        Assert.Throws<InvalidOperationException>(() => arguments.Read(result));
    }
}
