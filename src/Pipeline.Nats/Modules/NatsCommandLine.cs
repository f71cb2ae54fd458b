using System.Globalization;
using Pipeline.Engine;
using Pipeline.Modules;
using Pipeline.Nats.Connection;
using Pipeline.Nats.Sources;

namespace Pipeline.Nats.Modules;

/// <summary>
/// The NATS module's flags, as data the command line turns into options: how to reach the server
/// (<c>--nats</c>, the credentials and TLS; shared by <c>pipeline worker</c> and <c>pipeline
/// enqueue</c>), and the worker's stream, consumer, claimer and idle end. Each flag is a key of
/// <c>Pipeline:Nats</c> (or <c>Pipeline:Claimer</c>), so it is bound and checked as the
/// configuration is. The check names the flags and never a secret.
/// </summary>
/// <remarks>
/// Secrets can come from the environment (<see cref="PasswordVariable"/>, <see cref="TokenVariable"/>)
/// so they need not be on a command line that <c>ps</c> shows; a flag wins over its variable.
/// </remarks>
public static class NatsCommandLine
{
    /// <summary>The server URL when <c>--nats</c> is not given.</summary>
    public const string UrlVariable = "PIPELINE_NATS_URL";

    /// <summary>The password when <c>--nats-password</c> is not given.</summary>
    public const string PasswordVariable = "PIPELINE_NATS_PASSWORD";

    /// <summary>The token when <c>--nats-token</c> is not given.</summary>
    public const string TokenVariable = "PIPELINE_NATS_TOKEN";

    /// <summary>The longest <c>--exit-when-idle</c> and <c>--exit-when-drained</c>: one day, in seconds.</summary>
    public const int MaxIdleSeconds = SettingLimits.LongestMilliseconds / 1000;

    private const int MaxTimeoutMs = SettingLimits.LongestMilliseconds;
    private const string Connection = "Pipeline:Nats:Connection";
    private const string Source = "Pipeline:Nats:Source";

    /// <summary>The selecting flag: the server.</summary>
    public static ModuleFlag Url { get; } = new("--nats", $"{Connection}:Url", $"The NATS server URL, e.g. nats://127.0.0.1:4222 (several comma-separated for a cluster). Default: ${UrlVariable}. Required.")
    {
        HelpName = "url",
        EnvironmentVariable = UrlVariable,
    };

    /// <summary>The credentials and TLS, after <see cref="Url"/>.</summary>
    public static IReadOnlyList<ModuleFlag> ConnectionFlags { get; } =
    [
        new("--nats-user", $"{Connection}:User", "User name for user/password authentication.") { HelpName = "user" },
        new("--nats-password", $"{Connection}:Password", $"Password for --nats-user. Prefer ${PasswordVariable}: a command line is visible to other users in 'ps'.") { HelpName = "password", EnvironmentVariable = PasswordVariable },
        new("--nats-token", $"{Connection}:Token", $"Token authentication. Prefer ${TokenVariable}: a command line is visible to other users in 'ps'.") { HelpName = "token", EnvironmentVariable = TokenVariable },
        new("--nats-creds", $"{Connection}:CredsFile", "A .creds file (user JWT and NKey seed).") { HelpName = "file" },
        new("--nats-nkey", $"{Connection}:NKeyFile", "An NKey seed file.") { HelpName = "file" },
        new("--tls-require", $"{Connection}:RequireTls", "Refuse a connection without TLS. Default: TLS when the server offers it (tls:// URLs always).") { Kind = ModuleFlagKind.Switch },
        new("--tls-ca", $"{Connection}:TlsCaFile", "A PEM file of certificate authorities to trust. Default: the system's.") { HelpName = "file" },
        new("--tls-cert", $"{Connection}:TlsCertFile", "A PEM client certificate for mutual TLS (with --tls-key).") { HelpName = "file" },
        new("--tls-key", $"{Connection}:TlsKeyFile", "The PEM key of --tls-cert.") { HelpName = "file" },
    ];

    /// <summary>What <c>pipeline worker</c> takes to run on NATS.</summary>
    public static ModuleCommandLine Worker { get; } = BuildWorker();

    /// <summary>
    /// The connection the flags describe (<paramref name="values"/>): what the check and
    /// <c>pipeline enqueue</c> use when the selector is given.
    /// </summary>
    public static NatsConnectionOptions ConnectionFrom(ModuleFlagValues values)
    {
        ArgumentNullException.ThrowIfNull(values);
        return new NatsConnectionOptions
        {
            Url = Blank(values.Flag(Url.Name)) ?? string.Empty,
            User = Blank(values.Flag("--nats-user")),
            Password = Blank(values.Flag("--nats-password")),
            Token = Blank(values.Flag("--nats-token")),
            CredsFile = Blank(values.Flag("--nats-creds")),
            NKeyFile = Blank(values.Flag("--nats-nkey")),
            TlsCaFile = Blank(values.Flag("--tls-ca")),
            TlsCertFile = Blank(values.Flag("--tls-cert")),
            TlsKeyFile = Blank(values.Flag("--tls-key")),
            RequireTls = bool.TryParse(values.Flag("--tls-require"), out var require) && require,
        };
    }

    /// <summary>
    /// Whether the connection the flags give can work: null when it can, else one message naming
    /// the flag at fault. Without <c>--nats</c> (nor its variable) a settings file may give the
    /// connection instead; without one either, <c>--nats</c> is required.
    /// </summary>
    public static string? CheckConnection(ModuleFlagValues values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (!values.Selected)
        {
            return values.HasSettingsFile ? null : $"--nats is required (or set {UrlVariable}): the NATS server URL, e.g. nats://127.0.0.1:4222.";
        }

        var options = ConnectionFrom(values);
        try
        {
            options.Validate();
            return null;
        }
        catch (ArgumentException ex)
        {
            return ex.ParamName switch
            {
                nameof(NatsConnectionOptions.Url) => $"--nats '{options.DisplayUrl}' is not a NATS server URL (nats://host:port, tls://host:port, ws:// or wss://).",
                nameof(NatsConnectionOptions.Password) => $"--nats-password (or {PasswordVariable}) needs --nats-user.",
                // Validate names the missing half of the pair; a given file that cannot be used says why
                // (its message is the file's name and the problem, never its content).
                nameof(NatsConnectionOptions.TlsCertFile) when options.TlsCertFile is null => "--tls-key needs --tls-cert (mutual TLS needs both).",
                nameof(NatsConnectionOptions.TlsKeyFile) when options.TlsKeyFile is null => "--tls-cert needs --tls-key (mutual TLS needs both).",
                nameof(NatsConnectionOptions.TlsCertFile) => AsFlag(ex, "--tls-cert"),
                nameof(NatsConnectionOptions.TlsKeyFile) => AsFlag(ex, "--tls-key"),
                nameof(NatsConnectionOptions.CredsFile) => AsFlag(ex, "--nats-creds"),
                nameof(NatsConnectionOptions.NKeyFile) => AsFlag(ex, "--nats-nkey"),
                nameof(NatsConnectionOptions.TlsCaFile) => AsFlag(ex, "--tls-ca"),
                // Never the exception's own message: a future check might quote a secret.
                _ => $"the NATS connection settings are not valid ({ex.ParamName}).",
            };
        }
    }

    // "CredsFile '/x' is empty." as "--nats-creds '/x' is empty.": the exception's first line, its property named as the flag.
    private static string AsFlag(ArgumentException ex, string flag) =>
        flag + ex.Message.Split('\n')[0].Replace($" (Parameter '{ex.ParamName}')", string.Empty, StringComparison.Ordinal)[ex.ParamName!.Length..];

    private static ModuleCommandLine BuildWorker()
    {
        var nats = new NatsSourceOptions();
        ModuleFlag[] flags =
        [
            new("--stream", $"{Source}:Stream", $"The JetStream stream of commands. Default: {nats.Stream}."),
            new("--subjects", $"{Source}:Subjects", $"The stream's subjects when it is created, comma-separated. Default: {string.Join(',', nats.Subjects)}.") { Kind = ModuleFlagKind.List },
            new("--consumer", $"{Source}:Consumer", $"The durable pull consumer the pool of workers shares. Default: {nats.Consumer}."),
            new("--bind-only", $"{Source}:CreateIfMissing", "Only bind to an existing stream and consumer; never create or update them. Default: create when missing.") { Kind = ModuleFlagKind.Switch, WhenOn = "false", WhenOff = "true" },
            new("--max-ack-pending", $"{Source}:MaxAckPending", "The consumer's most unacked messages across the pool; at least --max-in-flight + --fetch-batch.") { Kind = ModuleFlagKind.Integer, Min = 1, Max = 1_000_000, Default = nats.MaxAckPending },
            new("--ack-wait-ms", $"{Source}:AckWait", "How long the server waits for an ack before redelivering, in milliseconds (held messages are renewed at a third of it).") { Kind = ModuleFlagKind.Milliseconds, Min = 1000, Max = MaxTimeoutMs, Default = (int)nats.AckWait.TotalMilliseconds },
            new("--max-deliver", $"{Source}:MaxDeliver", "Most deliveries of one message (-1: no limit); at least --max-attempts with after-dispatch.") { Kind = ModuleFlagKind.Integer, Min = -1, Max = 1_000_000, Default = (int)nats.MaxDeliver },
            new("--fetch-batch", $"{Source}:FetchBatch", "Most messages one fetch asks for (held ahead of the pipeline).") { Kind = ModuleFlagKind.Integer, Min = 1, Max = 10_000, Default = nats.FetchBatch },
            new("--kv-claimer", "Pipeline:Claimer", "Claim each command_id in a NATS KV bucket, so a command published twice runs once. Default: off.") { Kind = ModuleFlagKind.Switch, WhenOn = NatsModule.KvClaimerKind, WhenOff = PipelineModules.NoClaimer },
            new("--kv-bucket", "Pipeline:Nats:Claimer:Bucket", $"The claim bucket, with --kv-claimer. Default: {new Claiming.NatsKvClaimerOptions().Bucket}."),
            new("--exit-when-idle", $"{Source}:IdleTimeout", "End once nothing has arrived for this many seconds, and print the summary (batch jobs, tests). Default: run until stopped.") { Kind = ModuleFlagKind.Seconds, Min = 1, Max = MaxIdleSeconds },
            new("--exit-when-drained", $"{Source}:DrainTimeout", "With --exit-when-idle: once idle, while the consumer still holds messages (awaiting an ack, e.g. a killed worker's, or pending), keep running what comes back until it holds none, for at most this many seconds with nothing arriving. Default: exit at the first idle, reporting what it holds (exit 3).") { Kind = ModuleFlagKind.Seconds, Min = 1, Max = MaxIdleSeconds },
        ];
        return new ModuleCommandLine
        {
            Selector = Url,
            SourceKind = NatsModule.Kind,
            Summary = "a NATS JetStream durable consumer",
            Flags = [.. flags, .. ConnectionFlags],
            ReplacesSection = Connection,
            Check = CheckWorker,
        };
    }

    private static IReadOnlyList<string> CheckWorker(ModuleFlagValues values)
    {
        var errors = new List<string>();
        if (CheckConnection(values) is { } connection)
        {
            errors.Add(connection);
        }

        // Said in the flags' terms (the module's own check would name DrainTimeout and IdleTimeout).
        var idle = Span(values.Setting($"{Source}:IdleTimeout"));
        if (Span(values.Setting($"{Source}:DrainTimeout")) is { } drain && (idle is not { } i || drain < i))
        {
            errors.Add("--exit-when-drained needs --exit-when-idle (the quiet time that ends the run), and must be at least as long.");
        }

        return errors;
    }

    private static TimeSpan? Span(string? value) =>
        TimeSpan.TryParse(value, CultureInfo.InvariantCulture, out var span) ? span : null;

    private static string? Blank(string? value) => string.IsNullOrEmpty(value) ? null : value;
}
