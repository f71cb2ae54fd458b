using Pipeline.Modules;

namespace Pipeline.Storage.Sqlite.Modules;

/// <summary>
/// A SQLite file as a pipeline backend, the embedded default: the store source
/// (<c>Pipeline:Source sqlite</c>) over <see cref="SqliteQueuedWorkStore"/>, <c>pipeline enqueue</c>
/// and <c>pipeline status</c> on the same file, configured by <c>Pipeline:Sqlite</c>
/// (<see cref="SqliteWorkerOptions"/>). A host registers it with <c>services.AddPipelineSqlite()</c>;
/// on the command line <c>--sqlite FILE</c> selects it, and it is what <c>pipeline worker</c> runs on
/// when no source flag is given (<c>pipeline.db</c> in the working directory).
/// </summary>
public sealed class SqliteModule : StoreModule<SqliteWorkerOptions>
{
    /// <summary>The source kind.</summary>
    public const string SourceKind = "sqlite";

    /// <summary>The module's section under <c>Pipeline</c>.</summary>
    public const string ConfigurationSection = "Sqlite";

    /// <param name="configure">Changes the options bound from configuration (<c>o => o with { ... }</c>), for options set in code; null keeps them.</param>
    public SqliteModule(Func<SqliteWorkerOptions, SqliteWorkerOptions>? configure = null)
        : base(SourceKind, ConfigurationSection, configure)
    {
    }

    /// <inheritdoc/>
    protected override string StoreName => "SQLite";

    /// <inheritdoc/>
    protected override string SystemName => "sqlite";

    /// <inheritdoc/>
    protected override ModuleFlag Selector { get; } = new(
        "--sqlite",
        $"Pipeline:{ConfigurationSection}:{nameof(SqliteWorkerOptions.Store)}:{nameof(SqliteStoreOptions.Path)}",
        $"The SQLite file of queued commands (created with its schema when missing; its folder must exist). Default: {SqliteWorkerOptions.DefaultPath} in the working directory.")
    {
        HelpName = "file",
    };

    /// <inheritdoc/>
    protected override string SourceSummary => $"a SQLite file, the default ({SqliteWorkerOptions.DefaultPath} here)";

    /// <inheritdoc/>
    protected override string StoreSummary => $"a SQLite file, the default ({SqliteWorkerOptions.DefaultPath} here)";

    /// <inheritdoc/>
    protected override void FindStoreErrors(SqliteWorkerOptions options, string section, ICollection<string> errors)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(errors);
        var store = $"{section}:{nameof(SqliteWorkerOptions.Store)}";
        if (string.IsNullOrWhiteSpace(options.Store.Path))
        {
            errors.Add($"{store}:{nameof(SqliteStoreOptions.Path)} must name the database file (default {SqliteWorkerOptions.DefaultPath}).");
            return;
        }

        try
        {
            options.Store.Validate();
        }
        catch (ArgumentException ex)
        {
            // The record's messages do not start with the setting's name: put it there.
            errors.Add($"{store}:{ex.ParamName} {ex.Message.Split('\n')[0].Replace($" (Parameter '{ex.ParamName}')", string.Empty, StringComparison.Ordinal).Trim()}");
        }
    }

    /// <inheritdoc/>
    protected override string Where(SqliteWorkerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        try
        {
            return Path.GetFullPath(options.Store.Path);
        }
        catch (Exception ex) when (ex is ArgumentException or NotSupportedException or PathTooLongException)
        {
            return options.Store.Path;
        }
    }

    /// <inheritdoc/>
    protected override async Task<IQueuedWorkStore> OpenStoreAsync(SqliteWorkerOptions options, StoreOpening opening, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        var path = Where(options);
        if (opening == StoreOpening.Status && !File.Exists(path) && !Directory.Exists(path))
        {
            // Status only reads: a file that is not there is said so, never created.
            throw new SqliteStoreException(path, $"it does not exist (nothing was enqueued there yet: 'pipeline enqueue --sqlite {options.Store.Path}' creates it)");
        }

        if (opening == StoreOpening.Status && FileKind.Refusal(path) is null && File.Exists(path) && new FileInfo(path).Length == 0)
        {
            // An empty regular file would take the schema on open: status leaves it as it is. (A
            // device or FIFO, of length 0 too, is refused by the open with its own cause.)
            throw new SqliteStoreException(path, $"it is empty (no store was made in it yet: 'pipeline enqueue --sqlite {options.Store.Path}' makes one)");
        }

        return await SqliteQueuedWorkStore.OpenAsync(options.Store, timeProvider: null, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    protected override bool IsTransientOpenError(Exception exception) => SqliteErrors.IsTransient(exception);

    /// <inheritdoc/>
    protected override string Explain(SqliteWorkerOptions options, Exception exception) =>
        exception is SqliteStoreException or StoreSchemaException ? exception.Message : base.Explain(options, exception);
}
