using System.CommandLine;
using System.CommandLine.Parsing;
using Pipeline.Nats.Connection;

namespace Pipeline.Cli.Nats;

/// <summary>
/// The options that say how to reach NATS, shared by <c>pipeline worker</c> and
/// <c>pipeline enqueue</c>: <c>--nats</c>, the credentials and TLS. <see cref="AddTo"/> puts them
/// on a command with a validator, so a setting that cannot work is a usage error (exit 2) naming
/// its option; <see cref="Read"/> then builds the <see cref="NatsConnectionOptions"/>.
/// </summary>
/// <remarks>
/// Secrets can come from the environment (<see cref="PasswordVariable"/>, <see cref="TokenVariable"/>)
/// so they need not be on a command line that <c>ps</c> shows; a flag wins over its variable.
/// No error message this class writes contains a password, a token or a URL's user info.
/// </remarks>
internal sealed class NatsConnectionArguments
{
    /// <summary>The server URL when <c>--nats</c> is not given.</summary>
    public const string UrlVariable = "PIPELINE_NATS_URL";

    /// <summary>The password when <c>--nats-password</c> is not given.</summary>
    public const string PasswordVariable = "PIPELINE_NATS_PASSWORD";

    /// <summary>The token when <c>--nats-token</c> is not given.</summary>
    public const string TokenVariable = "PIPELINE_NATS_TOKEN";

    private readonly Func<string, string?> _environment;

    /// <param name="environment">Reads an environment variable; the process's own when null (tests pass their own).</param>
    public NatsConnectionArguments(Func<string, string?>? environment = null)
    {
        _environment = environment ?? Environment.GetEnvironmentVariable;
    }

    public Option<string?> Url { get; } = new("--nats")
    {
        Description = $"The NATS server URL, e.g. nats://127.0.0.1:4222 (several comma-separated for a cluster). Default: ${UrlVariable}. Required.",
        HelpName = "url",
    };

    public Option<string?> User { get; } = new("--nats-user") { Description = "User name for user/password authentication.", HelpName = "user" };

    public Option<string?> Password { get; } = new("--nats-password")
    {
        Description = $"Password for --nats-user. Prefer ${PasswordVariable}: a command line is visible to other users in 'ps'.",
        HelpName = "password",
    };

    public Option<string?> Token { get; } = new("--nats-token")
    {
        Description = $"Token authentication. Prefer ${TokenVariable}: a command line is visible to other users in 'ps'.",
        HelpName = "token",
    };

    public Option<string?> CredsFile { get; } = new("--nats-creds") { Description = "A .creds file (user JWT and NKey seed).", HelpName = "file" };

    public Option<string?> NKeyFile { get; } = new("--nats-nkey") { Description = "An NKey seed file.", HelpName = "file" };

    public Option<bool> RequireTls { get; } = new("--tls-require") { Description = "Refuse a connection without TLS. Default: TLS when the server offers it (tls:// URLs always)." };

    public Option<string?> TlsCa { get; } = new("--tls-ca") { Description = "A PEM file of certificate authorities to trust. Default: the system's.", HelpName = "file" };

    public Option<string?> TlsCert { get; } = new("--tls-cert") { Description = "A PEM client certificate for mutual TLS (with --tls-key).", HelpName = "file" };

    public Option<string?> TlsKey { get; } = new("--tls-key") { Description = "The PEM key of --tls-cert.", HelpName = "file" };

    /// <summary>Adds the options to <paramref name="command"/>, and a validator that reports a bad setting as a parse error naming its option.</summary>
    /// <param name="command">The command.</param>
    /// <param name="settingsFile">
    /// When given and set, the connection may come from that settings file instead: no <c>--nats</c>
    /// (nor <see cref="UrlVariable"/>) is then not an error here (see <see cref="IsGiven"/>).
    /// </param>
    public void AddTo(Command command, Option<string?>? settingsFile = null)
    {
        foreach (var option in new Option[] { Url, User, Password, Token, CredsFile, NKeyFile, RequireTls, TlsCa, TlsCert, TlsKey })
        {
            command.Options.Add(option);
        }

        command.Validators.Add(result =>
        {
            var options = Build(result.GetValue, result.GetValue(RequireTls));
            if (string.IsNullOrWhiteSpace(options.Url) && settingsFile is not null && result.GetValue(settingsFile) is not null)
            {
                return;
            }

            if (Check(options) is { } error)
            {
                result.AddError(error);
            }
        });
    }

    /// <summary>Whether the server was named on the command line (<c>--nats</c>) or by <see cref="UrlVariable"/>.</summary>
    public bool IsGiven(ParseResult result) => (Blank(result.GetValue(Url)) ?? Blank(_environment(UrlVariable))) is not null;

    /// <summary>The connection options from a parse result that passed the validator <see cref="AddTo"/> added.</summary>
    /// <exception cref="InvalidOperationException">The settings are not valid (the validator would have said so).</exception>
    public NatsConnectionOptions Read(ParseResult result)
    {
        var options = Build(result.GetValue, result.GetValue(RequireTls));
        if (Check(options) is { } error)
        {
            throw new InvalidOperationException(error);
        }

        return options;
    }

    // Null when the settings can work; otherwise one message naming the option at fault.
    private static string? Check(NatsConnectionOptions options)
    {
        if (string.IsNullOrWhiteSpace(options.Url))
        {
            return $"--nats is required (or set {UrlVariable}): the NATS server URL, e.g. nats://127.0.0.1:4222.";
        }

        try
        {
            options.Validate();
            return null;
        }
        catch (ArgumentException ex)
        {
            return ex.ParamName switch
            {
                nameof(NatsConnectionOptions.Url) => $"--nats '{TerminalText.Escape(options.DisplayUrl)}' is not a NATS server URL (nats://host:port, tls://host:port, ws:// or wss://).",
                nameof(NatsConnectionOptions.Password) => $"--nats-password (or {PasswordVariable}) needs --nats-user.",
                // Validate names the missing half of the pair; a given file that does not exist says so.
                nameof(NatsConnectionOptions.TlsCertFile) when options.TlsCertFile is null => "--tls-key needs --tls-cert (mutual TLS needs both).",
                nameof(NatsConnectionOptions.TlsKeyFile) when options.TlsKeyFile is null => "--tls-cert needs --tls-key (mutual TLS needs both).",
                nameof(NatsConnectionOptions.TlsCertFile) => $"--tls-cert '{TerminalText.Escape(options.TlsCertFile)}' does not exist.",
                nameof(NatsConnectionOptions.TlsKeyFile) => $"--tls-key '{TerminalText.Escape(options.TlsKeyFile)}' does not exist.",
                nameof(NatsConnectionOptions.CredsFile) => $"--nats-creds '{TerminalText.Escape(options.CredsFile)}' does not exist.",
                nameof(NatsConnectionOptions.NKeyFile) => $"--nats-nkey '{TerminalText.Escape(options.NKeyFile)}' does not exist.",
                nameof(NatsConnectionOptions.TlsCaFile) => $"--tls-ca '{TerminalText.Escape(options.TlsCaFile)}' does not exist.",
                // Never the exception's own message: a future check might quote a secret.
                _ => $"the NATS connection settings are not valid ({TerminalText.Escape(ex.ParamName)}).",
            };
        }
    }

    private NatsConnectionOptions Build(Func<Option<string?>, string?> value, bool requireTls) => new()
    {
        Url = Blank(value(Url)) ?? Blank(_environment(UrlVariable)) ?? string.Empty,
        User = Blank(value(User)),
        Password = Blank(value(Password)) ?? Blank(_environment(PasswordVariable)),
        Token = Blank(value(Token)) ?? Blank(_environment(TokenVariable)),
        CredsFile = Blank(value(CredsFile)),
        NKeyFile = Blank(value(NKeyFile)),
        TlsCaFile = Blank(value(TlsCa)),
        TlsCertFile = Blank(value(TlsCert)),
        TlsKeyFile = Blank(value(TlsKey)),
        RequireTls = requireTls,
    };

    private static string? Blank(string? value) => string.IsNullOrEmpty(value) ? null : value;
}
