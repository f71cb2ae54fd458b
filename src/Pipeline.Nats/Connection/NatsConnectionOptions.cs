using NATS.Client.Core;
using Pipeline.Engine;

namespace Pipeline.Nats.Connection;

/// <summary>
/// How a worker or <c>pipeline enqueue</c> reaches NATS: the server URL, credentials and TLS,
/// passed through to NATS.Net. Immutable; every property has a documented default.
/// </summary>
/// <remarks>
/// Secrets (password, token, credentials inside the URL) never leave this record in text:
/// <see cref="ToString"/> and <see cref="DisplayUrl"/> show the URL without its user info, and
/// error messages built from this record use those.
/// </remarks>
public sealed record NatsConnectionOptions
{
    /// <summary>The server URL (several comma-separated for a cluster). Default <c>nats://127.0.0.1:4222</c>.</summary>
    public string Url { get; init; } = "nats://127.0.0.1:4222";

    /// <summary>The connection name the server shows. Default <c>pipeline</c>.</summary>
    public string Name { get; init; } = "pipeline";

    /// <summary>User name for user/password authentication. Default none.</summary>
    public string? User { get; init; }

    /// <summary>Password for user/password authentication. Default none. Never logged.</summary>
    public string? Password { get; init; }

    /// <summary>Token authentication. Default none. Never logged.</summary>
    public string? Token { get; init; }

    /// <summary>A <c>.creds</c> file (user JWT and NKey seed; a regular file of at most 1 MiB, read once). Default none.</summary>
    public string? CredsFile { get; init; }

    /// <summary>An NKey seed file (a line starting <c>SU</c>; at most 1 MiB, read once). Default none.</summary>
    public string? NKeyFile { get; init; }

    /// <summary>Require TLS. Default false: TLS when the server offers it (<c>tls://</c> URLs always).</summary>
    public bool RequireTls { get; init; }

    /// <summary>A PEM file of the certificate authorities to trust. Default: the system's.</summary>
    public string? TlsCaFile { get; init; }

    /// <summary>A PEM client certificate (mutual TLS), with <see cref="TlsKeyFile"/>. Default none.</summary>
    public string? TlsCertFile { get; init; }

    /// <summary>The PEM key of <see cref="TlsCertFile"/>. Default none.</summary>
    public string? TlsKeyFile { get; init; }

    /// <summary>How long one connect attempt may take. More than 0, at most 1 day. Default 5 s.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>The URL with any user info replaced by <c>***</c>: safe to print.</summary>
    public string DisplayUrl => Redact(Url);

    /// <summary>Throws the first of <see cref="FindErrors"/>, naming the setting that cannot work.</summary>
    public void Validate()
    {
        if (FindErrors() is [var first, ..])
        {
            throw first;
        }
    }

    /// <summary>Every setting that cannot work, not only the first, each an exception naming it (its message starts with the property's name).</summary>
    public IReadOnlyList<ArgumentException> FindErrors()
    {
        var errors = new List<ArgumentException>();
        if (string.IsNullOrWhiteSpace(Url))
        {
            errors.Add(new ArgumentException("Url must name a NATS server, e.g. nats://127.0.0.1:4222.", nameof(Url)));
        }

        foreach (var part in string.IsNullOrWhiteSpace(Url) ? [] : Url.Split(',', StringSplitOptions.TrimEntries))
        {
            var withScheme = part.Contains("://", StringComparison.Ordinal) ? part : "nats://" + part;
            if (!Uri.TryCreate(withScheme, UriKind.Absolute, out var uri) || uri.Scheme is not ("nats" or "tls" or "ws" or "wss") || string.IsNullOrEmpty(uri.Host))
            {
                errors.Add(new ArgumentException($"Url '{Redact(part)}' is not a NATS server URL (nats://host:port, tls://host:port, ws:// or wss://).", nameof(Url)));
            }
        }

        if (Password is not null && User is null)
        {
            errors.Add(new ArgumentException("Password needs User.", nameof(Password)));
        }

        if ((TlsCertFile is null) != (TlsKeyFile is null))
        {
            errors.Add(new ArgumentException("TlsCertFile and TlsKeyFile go together (mutual TLS needs both).", TlsCertFile is null ? nameof(TlsCertFile) : nameof(TlsKeyFile)));
        }

        // Bounded above too: NATS.Net arms it as a timer on every connect attempt.
        if (!SettingLimits.IsDuration(ConnectTimeout, positive: true))
        {
            errors.Add(new ArgumentOutOfRangeException(nameof(ConnectTimeout), ConnectTimeout, $"ConnectTimeout {SettingLimits.DurationRange(positive: true)}."));
        }

        // Each file is read (once, bounded) and checked for what it must hold: a garbage or endless
        // file is a setting error now, never a server that seems unreachable later.
        foreach (var (file, name, problemOf) in new (string?, string, Func<string, string?>)[]
        {
            (CredsFile, nameof(CredsFile), static f => NatsCredentialFiles.ReadCreds(f, out var p) is null ? p : null),
            (NKeyFile, nameof(NKeyFile), static f => NatsCredentialFiles.ReadNKey(f, out var p) is null ? p : null),
            (TlsCaFile, nameof(TlsCaFile), NatsCredentialFiles.PemProblem),
            (TlsCertFile, nameof(TlsCertFile), NatsCredentialFiles.PemProblem),
            (TlsKeyFile, nameof(TlsKeyFile), NatsCredentialFiles.PemProblem),
        })
        {
            if (file is not null && problemOf(file) is { } problem)
            {
                errors.Add(new ArgumentException($"{name} '{file}' {problem}.", name));
            }
        }

        return errors;
    }

    /// <summary>
    /// The NATS.Net options: reconnects forever (a restarted server is waited for, never a crash)
    /// and retries the first connect too. The credentials and NKey files are read here, once and
    /// bounded, and their content handed over (NATS.Net would read the path itself, unbounded).
    /// </summary>
    /// <exception cref="ArgumentException">A credentials or NKey file no longer holds what <see cref="FindErrors"/> found in it.</exception>
    public NatsOpts ToNatsOpts()
    {
        var auth = NatsAuthOpts.Default with { Username = User, Password = Password, Token = Token };
        if (CredsFile is not null)
        {
            var (jwt, seed) = NatsCredentialFiles.ReadCreds(CredsFile, out var problem) ?? throw new ArgumentException($"{nameof(CredsFile)} '{CredsFile}' {problem}.", nameof(CredsFile));
            auth = auth with { Jwt = jwt, Seed = seed };
        }

        if (NKeyFile is not null)
        {
            var (seed, publicKey) = NatsCredentialFiles.ReadNKey(NKeyFile, out var problem) ?? throw new ArgumentException($"{nameof(NKeyFile)} '{NKeyFile}' {problem}.", nameof(NKeyFile));
            auth = auth with { Seed = seed, NKey = publicKey };
        }

        return NatsOpts.Default with
        {
            Url = Url,
            Name = Name,
            ConnectTimeout = ConnectTimeout,
            RetryOnInitialConnect = true,
            MaxReconnectRetry = -1,
            AuthOpts = auth,
            TlsOpts = NatsTlsOpts.Default with
            {
                Mode = RequireTls ? TlsMode.Require : TlsMode.Auto,
                CaFile = TlsCaFile,
                CertFile = TlsCertFile,
                KeyFile = TlsKeyFile,
            },
        };
    }

    /// <summary>The URL, credentials left out.</summary>
    public override string ToString() => DisplayUrl;

    /// <summary>
    /// Replaces the user info of every URL in <paramref name="url"/> with <c>***</c>: everything up
    /// to the <i>last</i> '@', since a password may hold an unescaped '@' (the host never does).
    /// </summary>
    public static string Redact(string url) =>
        string.Join(',', url.Split(',').Select(static part =>
        {
            var scheme = part.IndexOf("://", StringComparison.Ordinal);
            var start = scheme < 0 ? 0 : scheme + 3;
            var at = part.LastIndexOf('@');
            at = at < start ? -1 : at;
            return at < 0 ? part : string.Concat(part.AsSpan(0, start), "***", part.AsSpan(at));
        }));
}
