using System.Text.RegularExpressions;

namespace Pipeline.Storage.Postgres;

/// <summary>Where and how <see cref="PostgresQueuedWorkStore"/> keeps its queue.</summary>
public sealed partial record PostgresStoreOptions
{
    /// <summary>
    /// An Npgsql connection string (<c>Host=…;Username=…;Database=…</c>). Required. Pool size and
    /// timeouts in it are honoured; <see cref="CommandTimeout"/> replaces its command timeout.
    /// </summary>
    public required string ConnectionString { get; init; }

    /// <summary>
    /// The schema the store's tables live in, created on open when missing: lower-case letters,
    /// digits and underscores, starting with a letter or underscore. Default <c>pipeline</c>.
    /// Two schemas in one database are two independent stores.
    /// </summary>
    public string Schema { get; init; } = "pipeline";

    /// <summary>
    /// How long one call's statement may run before it fails with a (transient) timeout. Whole
    /// seconds, at least 1. Default 30 s.
    /// </summary>
    public TimeSpan CommandTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Every setting that cannot work, by property name; empty when none.</summary>
    public IReadOnlyList<ArgumentException> FindErrors()
    {
        var errors = new List<ArgumentException>();
        if (string.IsNullOrWhiteSpace(ConnectionString))
        {
            errors.Add(new ArgumentException("ConnectionString must name the database.", nameof(ConnectionString)));
        }

        if (Schema is null || !SchemaName().IsMatch(Schema))
        {
            errors.Add(new ArgumentException($"Schema '{Schema}' is not a plain lower-case identifier (letters, digits, underscores; at most 63).", nameof(Schema)));
        }

        if (CommandTimeout < TimeSpan.FromSeconds(1))
        {
            errors.Add(new ArgumentOutOfRangeException(nameof(CommandTimeout), CommandTimeout, "CommandTimeout must be at least 1 s."));
        }

        return errors;
    }

    /// <summary>Throws the first of <see cref="FindErrors"/>.</summary>
    public void Validate()
    {
        if (FindErrors() is [var first, ..])
        {
            throw first;
        }
    }

    [GeneratedRegex("^[a-z_][a-z0-9_]{0,62}$")]
    private static partial Regex SchemaName();
}
