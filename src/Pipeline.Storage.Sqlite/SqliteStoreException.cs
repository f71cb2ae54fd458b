namespace Pipeline.Storage.Sqlite;

/// <summary>
/// The SQLite store's file cannot be used: its folder is missing, it is a directory, it is not a
/// SQLite database, it is read-only, the disk is full. The message names the file and the cause.
/// Not transient: trying again does not help until someone fixes the file.
/// </summary>
public sealed class SqliteStoreException : Exception
{
    /// <summary>Creates the exception for <paramref name="path"/> with <paramref name="cause"/>.</summary>
    public SqliteStoreException(string path, string cause, Exception? inner = null)
        : base($"The SQLite store '{path}' cannot be used: {cause}.", inner)
    {
        Path = path;
        Cause = cause;
    }

    /// <summary>The database file, as a full path.</summary>
    public string Path { get; }

    /// <summary>What is wrong with it, in a few words.</summary>
    public string Cause { get; }
}
