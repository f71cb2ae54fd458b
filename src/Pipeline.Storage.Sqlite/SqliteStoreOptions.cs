namespace Pipeline.Storage.Sqlite;

/// <summary>Where the SQLite store lives and how it writes.</summary>
public sealed record SqliteStoreOptions
{
    /// <summary>The database file; created with its schema when missing. Its folder must exist.</summary>
    public required string Path { get; init; }

    /// <summary>
    /// How long a write waits for another process that holds the file's write lock before it
    /// fails as busy (a transient error: the caller retries). Default 5 s.
    /// </summary>
    public TimeSpan BusyTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How hard a commit pushes to the disk. Default <see cref="SqliteDurability.Full"/>: a commit
    /// is synced before the call returns, so it survives a power cut as well as a crash.
    /// </summary>
    public SqliteDurability Durability { get; init; } = SqliteDurability.Full;

    /// <summary>
    /// At most how many calls the writer puts into one transaction (calls that arrive while a
    /// transaction runs wait and go together into the next). Default 256.
    /// </summary>
    public int MaxCallsPerTransaction { get; init; } = 256;

    /// <summary>Throws for a setting out of range, naming it.</summary>
    public void Validate()
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(Path, nameof(Path));
        if (BusyTimeout < TimeSpan.Zero || BusyTimeout > TimeSpan.FromDays(1))
        {
            throw new ArgumentOutOfRangeException(nameof(BusyTimeout), BusyTimeout, "The busy timeout must be between 0 and one day.");
        }

        if (!Enum.IsDefined(Durability))
        {
            throw new ArgumentOutOfRangeException(nameof(Durability), Durability, "Unknown durability.");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(MaxCallsPerTransaction, 1, nameof(MaxCallsPerTransaction));
    }
}

/// <summary>How a commit reaches the disk (SQLite's <c>synchronous</c> setting, in WAL mode).</summary>
public enum SqliteDurability
{
    /// <summary>Synced at every commit: survives a crash and a power cut (<c>synchronous=FULL</c>).</summary>
    Full,

    /// <summary>
    /// Written at every commit, synced at checkpoints: survives a crash of the process, but a power
    /// cut may lose the last commits (<c>synchronous=NORMAL</c>). Faster on a slow disk.
    /// </summary>
    Normal,
}
