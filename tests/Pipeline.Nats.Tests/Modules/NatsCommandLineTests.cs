using Pipeline.Modules;
using Pipeline.Nats.Modules;

namespace Pipeline.Nats.Tests.Modules;

/// <summary>The NATS module's flags: the connection they describe, and the checks that name a flag and never a secret.</summary>
public sealed class NatsCommandLineTests
{
    private static ModuleFlagValues Values(string[] args, Dictionary<string, string?>? settings = null, bool settingsFile = false)
    {
        // As the command line gives them: "--flag value" pairs, a switch alone.
        var given = new Dictionary<string, string?>(StringComparer.Ordinal);
        for (var i = 0; i < args.Length; i++)
        {
            given[args[i]] = i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal) ? args[++i] : "true";
        }

        return new ModuleFlagValues(
            name => given.TryGetValue(name, out var value) ? value : null,
            key => settings is not null && settings.TryGetValue(key, out var value) ? value : null,
            selected: given.ContainsKey("--nats"),
            settingsFile);
    }

    [Fact]
    public void The_flags_describe_the_connection()
    {
        var options = NatsCommandLine.ConnectionFrom(Values(["--nats", "nats://127.0.0.1:4333", "--nats-user", "u", "--nats-password", "p", "--nats-token", "t", "--tls-require"]));

        Assert.Equal("nats://127.0.0.1:4333", options.Url);
        Assert.Equal(("u", "p", "t", true), (options.User, options.Password, options.Token, options.RequireTls));
    }

    [Theory]
    [InlineData(new string[0], "--nats is required (or set PIPELINE_NATS_URL)")]
    [InlineData(new[] { "--nats", "http://user:hunter2@h:80" }, "--nats 'http://***@h:80' is not a NATS server URL")]
    [InlineData(new[] { "--nats", "nats://h:1", "--nats-password", "hunter2" }, "--nats-password (or PIPELINE_NATS_PASSWORD) needs --nats-user")]
    [InlineData(new[] { "--nats", "nats://h:1", "--tls-cert", "/etc/hostname" }, "--tls-cert needs --tls-key")]
    [InlineData(new[] { "--nats", "nats://h:1", "--tls-key", "/etc/hostname" }, "--tls-key needs --tls-cert")]
    [InlineData(new[] { "--nats", "nats://h:1", "--tls-cert", "/no/c.pem", "--tls-key", "/etc/hostname" }, "--tls-cert '/no/c.pem' does not exist")]
    [InlineData(new[] { "--nats", "nats://h:1", "--nats-creds", "/no/such.creds" }, "--nats-creds '/no/such.creds' does not exist")]
    [InlineData(new[] { "--nats", "nats://h:1", "--nats-nkey", "/no/such.nk" }, "--nats-nkey '/no/such.nk' does not exist")]
    [InlineData(new[] { "--nats", "nats://h:1", "--tls-ca", "/no/ca.pem" }, "--tls-ca '/no/ca.pem' does not exist")]
    [InlineData(new[] { "--nats", "nats://h:1", "--nats-creds", "/dev/zero" }, "--nats-creds '/dev/zero' is not a regular file (a device, a FIFO or a socket).")]
    [InlineData(new[] { "--nats", "nats://h:1", "--nats-creds", "/" }, "--nats-creds '/' is a directory, not a file.")]
    [InlineData(new[] { "--nats", "nats://h:1", "--nats-nkey", "/etc/hostname" }, "--nats-nkey '/etc/hostname' is not an NKey seed file")]
    [InlineData(new[] { "--nats", "nats://h:1", "--tls-ca", "/etc/hostname" }, "--tls-ca '/etc/hostname' is not a PEM file")]
    [InlineData(new[] { "--nats", "nats://h:1", "--tls-cert", "/dev/zero", "--tls-key", "/dev/zero" }, "--tls-cert '/dev/zero' is not a regular file")]
    public void A_connection_that_cannot_work_is_one_error_naming_its_flag_and_no_secret(string[] args, string expected)
    {
        var error = Assert.Single(NatsCommandLine.Worker.Check!(Values(args)));

        Assert.Contains(expected, error, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_nats_a_settings_file_may_hold_the_connection()
    {
        Assert.Empty(NatsCommandLine.Worker.Check!(Values([], settingsFile: true)));
    }

    [Theory]
    [InlineData(null, "00:00:30")]
    [InlineData("00:00:10", "00:00:05")]
    public void Exit_when_drained_without_exit_when_idle_or_shorter_than_it_is_an_error_in_the_flags_terms(string? idle, string drain)
    {
        var settings = new Dictionary<string, string?> { ["Pipeline:Nats:Source:IdleTimeout"] = idle, ["Pipeline:Nats:Source:DrainTimeout"] = drain };

        var error = Assert.Single(NatsCommandLine.Worker.Check!(Values(["--nats", "nats://h:1"], settings)));

        Assert.Equal("--exit-when-drained needs --exit-when-idle (the quiet time that ends the run), and must be at least as long.", error);
    }

    [Theory]
    [InlineData("--subject", "a b", "--subject must be a subject without spaces, '*' or '>' (it may hold {execution_id}), not 'a b'.")]
    [InlineData("--subject", "orders.>", "--subject must be a subject without spaces, '*' or '>' (it may hold {execution_id}), not 'orders.>'.")]
    [InlineData("--stream", "a.b", "--stream must be a name without spaces, '.', '*' or '>', not 'a.b'.")]
    public void Enqueue_refuses_a_subject_or_stream_the_server_would_refuse(string flag, string value, string expected)
    {
        var error = Assert.Single(new NatsModule().Enqueue!.CommandLine.Check!(Values(["--nats", "nats://h:1", flag, value])));

        Assert.Equal(expected, error);
    }
}
