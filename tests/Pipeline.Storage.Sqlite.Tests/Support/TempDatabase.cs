namespace Pipeline.Storage.Sqlite.Tests.Support;

/// <summary>A folder of its own for a test's database files, removed with everything in it.</summary>
public sealed class TempDatabase : IDisposable
{
    public TempDatabase()
    {
        Folder = Directory.CreateTempSubdirectory("pipeline-sqlite-").FullName;
        Path = System.IO.Path.Combine(Folder, "store.db");
    }

    /// <summary>The folder, created.</summary>
    public string Folder { get; }

    /// <summary>A database file in it (not created).</summary>
    public string Path { get; }

    public SqliteStoreOptions Options => new() { Path = Path };

    public void Dispose()
    {
        // A file a test made read-only is still removed.
        foreach (var file in Directory.EnumerateFiles(Folder, "*", SearchOption.AllDirectories))
        {
            File.SetAttributes(file, FileAttributes.Normal);
        }

        Directory.Delete(Folder, recursive: true);
    }
}
