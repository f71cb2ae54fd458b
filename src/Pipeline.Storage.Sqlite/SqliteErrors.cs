using Microsoft.Data.Sqlite;

namespace Pipeline.Storage.Sqlite;

/// <summary>Turns SQLite's error codes into a transient error or one clear <see cref="SqliteStoreException"/>.</summary>
internal static class SqliteErrors
{
    // Primary result codes (the low byte of an extended code).
    private const int Busy = 5;
    private const int Locked = 6;
    private const int ReadOnly = 8;
    private const int IoError = 10;
    private const int Corrupt = 11;
    private const int Full = 13;
    private const int CantOpen = 14;
    private const int Auth = 23;
    private const int Perm = 3;
    private const int NotADatabase = 26;

    /// <summary>Another connection holds the lock past the busy timeout: worth trying again.</summary>
    public static bool IsTransient(Exception exception) =>
        exception is SqliteException { SqliteErrorCode: var code } && (code & 0xff) is Busy or Locked;

    /// <summary>An error about the file or the disk, not about one call: every call would fail the same way.</summary>
    public static bool IsAboutTheFile(Exception exception) =>
        exception is SqliteException { SqliteErrorCode: var code } && (code & 0xff) is Busy or Locked or ReadOnly or IoError or Corrupt or Full or CantOpen or Auth or Perm or NotADatabase;

    /// <summary>
    /// The exception a caller sees: a busy database as it is (transient), an error about the file
    /// as a <see cref="SqliteStoreException"/> naming it, anything else as it is.
    /// </summary>
    public static Exception Describe(string path, Exception exception) =>
        exception is SqliteException sqlite && !IsTransient(sqlite) && CauseOf(sqlite) is { } cause
            ? new SqliteStoreException(path, cause, sqlite)
            : exception;

    private static string? CauseOf(SqliteException exception) => (exception.SqliteErrorCode & 0xff) switch
    {
        ReadOnly => "the file is read-only (or its folder is: SQLite writes its -wal and -shm files beside it)",
        Full => "the disk is full",
        CantOpen => "the file cannot be opened (is its folder there, and may this user write to it?)",
        NotADatabase => "the file is not a SQLite database",
        Corrupt => "the database file is corrupt",
        IoError => $"a disk I/O error ({exception.Message})",
        Auth or Perm => "permission denied",
        _ => null,
    };
}
