namespace Pipeline.Storage.Sqlite.Modules;

/// <summary>
/// A worker on a SQLite file, bound from the <c>Pipeline:Sqlite</c> section: where the file is
/// and how it writes (<see cref="Store"/>), and the store source (<see cref="Source"/>).
/// </summary>
public sealed record SqliteWorkerOptions : IStoreWorkerOptions
{
    /// <summary>The file a worker, <c>pipeline enqueue</c> and <c>pipeline status</c> use when none is named: <c>pipeline.db</c> in the working directory.</summary>
    public const string DefaultPath = "pipeline.db";

    /// <summary>The file (default <see cref="DefaultPath"/>), the busy timeout and durability (<see cref="SqliteStoreOptions"/> documents each default).</summary>
    public SqliteStoreOptions Store { get; init; } = new() { Path = DefaultPath };

    /// <inheritdoc/>
    public StoreSourceOptions Source { get; init; } = new();
}
