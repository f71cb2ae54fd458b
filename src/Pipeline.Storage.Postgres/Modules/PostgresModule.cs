using System.Data.Common;
using Npgsql;
using Pipeline.Modules;

namespace Pipeline.Storage.Postgres.Modules;

/// <summary>
/// A PostgreSQL database as a pipeline backend: the store source (<c>Pipeline:Source postgres</c>)
/// over <see cref="PostgresQueuedWorkStore"/>, shared by many workers on many machines (the
/// database is the claim authority: <c>FOR UPDATE SKIP LOCKED</c>, leases on its clock), with
/// <c>pipeline enqueue</c> and <c>pipeline status</c> on the same database, configured by
/// <c>Pipeline:Postgres</c> (<see cref="PostgresWorkerOptions"/>). A host registers it with
/// <c>services.AddPipelinePostgres()</c>; on the command line <c>--postgres CONN</c> (or
/// <c>$PIPELINE_POSTGRES</c>) selects it. A password is never printed: messages show the
/// connection string without it.
/// </summary>
public sealed class PostgresModule : StoreModule<PostgresWorkerOptions>
{
    /// <summary>The source kind.</summary>
    public const string SourceKind = "postgres";

    /// <summary>The module's section under <c>Pipeline</c>.</summary>
    public const string ConfigurationSection = "Postgres";

    /// <summary>The connection string when <c>--postgres</c> is not given: a password kept off the command line, which <c>ps</c> shows.</summary>
    public const string ConnectionVariable = "PIPELINE_POSTGRES";

    private const string Store = $"Pipeline:{ConfigurationSection}:{nameof(PostgresWorkerOptions.Store)}";

    /// <param name="configure">Changes the options bound from configuration (<c>o => o with { ... }</c>), for options set in code; null keeps them.</param>
    public PostgresModule(Func<PostgresWorkerOptions, PostgresWorkerOptions>? configure = null)
        : base(SourceKind, ConfigurationSection, configure)
    {
    }

    /// <inheritdoc/>
    protected override string StoreName => "PostgreSQL";

    /// <inheritdoc/>
    protected override string SystemName => "postgresql";

    /// <inheritdoc/>
    protected override ModuleFlag Selector { get; } = new(
        "--postgres",
        $"{Store}:{nameof(PostgresStoreOptions.ConnectionString)}",
        $"A PostgreSQL connection string (Host=...;Username=...;Database=...), the store many workers share. Default: ${ConnectionVariable}; prefer it (or a .pgpass file) for the password: a command line is visible to other users in 'ps'.")
    {
        HelpName = "conn",
        EnvironmentVariable = ConnectionVariable,
    };

    /// <inheritdoc/>
    protected override IReadOnlyList<ModuleFlag> StoreFlags { get; } =
    [
        new("--postgres-schema", $"{Store}:{nameof(PostgresStoreOptions.Schema)}", "The schema the store's tables live in (created when missing); two schemas are two stores. Default: pipeline.") { HelpName = "name" },
    ];

    /// <inheritdoc/>
    protected override string SourceSummary => "a PostgreSQL database many workers share";

    /// <inheritdoc/>
    protected override string StoreSummary => "a PostgreSQL database";

    /// <summary>The connection string without its password (or any other secret), as messages show it; the text given when it does not parse.</summary>
    public static string Display(string connectionString)
    {
        try
        {
            var builder = new NpgsqlConnectionStringBuilder(connectionString);
            foreach (var secret in new[] { "Password", "SSL Password" })
            {
                builder.Remove(secret);
            }

            return builder.ConnectionString;
        }
        catch (ArgumentException)
        {
            return "(a connection string that does not parse)";
        }
    }

    /// <inheritdoc/>
    protected override IReadOnlyList<string> CheckFlags(ModuleFlagValues values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Flag(Selector.Name) is not { } connection)
        {
            return [];
        }

        // Never the text itself: it may hold the password.
        return Parses(connection) ? [] : [$"--postgres (or ${ConnectionVariable}) is not a connection string: Host=...;Username=...;Database=... (keys as Npgsql takes them)."];
    }

    /// <inheritdoc/>
    protected override void FindStoreErrors(PostgresWorkerOptions options, string section, ICollection<string> errors)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(errors);
        var store = $"{section}:{nameof(PostgresWorkerOptions.Store)}";
        if (string.IsNullOrWhiteSpace(options.Store.ConnectionString))
        {
            errors.Add($"{store}:{nameof(PostgresStoreOptions.ConnectionString)} is required with the PostgreSQL store (--postgres or ${ConnectionVariable}: Host=...;Username=...;Database=...).");
        }
        else if (!Parses(options.Store.ConnectionString))
        {
            errors.Add($"{store}:{nameof(PostgresStoreOptions.ConnectionString)} is not a connection string (Host=...;Username=...;Database=...).");
        }

        ModuleErrors.Add(errors, store, options.Store.FindErrors().Where(e => e.ParamName != nameof(PostgresStoreOptions.ConnectionString)));
    }

    /// <inheritdoc/>
    protected override string Where(PostgresWorkerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return $"{Display(options.Store.ConnectionString)} (schema {options.Store.Schema})";
    }

    /// <inheritdoc/>
    protected override async Task<IQueuedWorkStore> OpenStoreAsync(PostgresWorkerOptions options, StoreOpening opening, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        return await PostgresQueuedWorkStore.OpenAsync(options.Store, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    protected override bool IsTransientOpenError(Exception exception) => PostgresErrors.IsTransient(exception);

    /// <inheritdoc/>
    protected override string Explain(PostgresWorkerOptions options, Exception exception)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(exception);
        var why = exception is StoreSchemaException ? exception.Message : $"The PostgreSQL store at {Where(options)} cannot be used: {Describe(exception, options)}";
        return Hide(why, options.Store.ConnectionString);
    }

    // The server's own words (SQLSTATE and message text, not Npgsql's multi-line message with its
    // note on redacted detail), and for what a newcomer meets first, what to do about it.
    private static string Describe(Exception exception, PostgresWorkerOptions options)
    {
        if (exception is not PostgresException postgres)
        {
            return exception.Message;
        }

        var user = UserOf(options.Store.ConnectionString);
        var what = $"{postgres.SqlState}: {postgres.MessageText.TrimEnd('.')}";
        return postgres.SqlState switch
        {
            // invalid_password, invalid_authorization_specification
            "28P01" or "28000" => $"{what}. Check the user name and password (a password is best kept in ${ConnectionVariable}, not on the command line)",
            // insufficient_privilege: CONNECT refused, or the first open cannot create the store's schema
            "42501" => $"{what}. The user needs CONNECT on the database, and the first time CREATE on it to make schema {options.Store.Schema} (GRANT CONNECT, CREATE ON DATABASE ... TO {user}), or a schema made for it (CREATE SCHEMA {options.Store.Schema} AUTHORIZATION {user})",
            // invalid_catalog_name
            "3D000" => $"{what}. Create it first (createdb, or CREATE DATABASE as a user allowed to)",
            _ => what,
        };
    }

    private static string UserOf(string connectionString)
    {
        try
        {
            return new NpgsqlConnectionStringBuilder(connectionString).Username is { Length: > 0 } user ? user : "the user";
        }
        catch (ArgumentException)
        {
            return "the user";
        }
    }

    private static bool Parses(string connectionString)
    {
        try
        {
            _ = new NpgsqlConnectionStringBuilder(connectionString);
            return true;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    // A driver's message might quote the connection string or its password: neither is printed.
    private static string Hide(string text, string connectionString)
    {
        text = text.Replace(connectionString, Display(connectionString), StringComparison.Ordinal);
        try
        {
            var builder = new DbConnectionStringBuilder { ConnectionString = connectionString };
            foreach (var key in new[] { "Password", "SSL Password" })
            {
                if (builder.TryGetValue(key, out var secret) && secret is string { Length: >= 3 } value)
                {
                    text = text.Replace(value, "***", StringComparison.Ordinal);
                }
            }
        }
        catch (ArgumentException)
        {
            // Not a connection string: nothing in it to hide beyond the text itself, replaced above.
        }

        return text;
    }
}
