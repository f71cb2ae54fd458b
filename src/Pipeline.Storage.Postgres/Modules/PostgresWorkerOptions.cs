namespace Pipeline.Storage.Postgres.Modules;

/// <summary>
/// A worker on a PostgreSQL database, bound from the <c>Pipeline:Postgres</c> section: the
/// connection and schema (<see cref="Store"/>), and the store source (<see cref="Source"/>).
/// </summary>
public sealed record PostgresWorkerOptions : IStoreWorkerOptions
{
    /// <summary>
    /// The connection string (required with source <c>postgres</c>; keep its password out of files:
    /// <c>$PIPELINE_POSTGRES</c>, or a <c>.pgpass</c> file), the schema (default <c>pipeline</c>) and
    /// the command timeout (<see cref="PostgresStoreOptions"/> documents each default).
    /// </summary>
    public PostgresStoreOptions Store { get; init; } = new() { ConnectionString = string.Empty };

    /// <inheritdoc/>
    public StoreSourceOptions Source { get; init; } = new();
}
