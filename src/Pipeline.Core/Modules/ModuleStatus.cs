using Microsoft.Extensions.Configuration;
using Pipeline.Storage;

namespace Pipeline.Modules;

/// <summary>
/// What a module offers <c>pipeline status</c>: its flags (the selector, where the store is) and
/// how to read the store's summary from the settings they make. The command line prints it; the
/// module only opens, reads and closes.
/// </summary>
public sealed record ModuleStatus
{
    /// <summary>The flags, each a key of the module's section (<c>Pipeline:Sqlite:Store:Path</c>).</summary>
    public required ModuleCommandLine CommandLine { get; init; }

    /// <summary>What the store is, as the command's help says it (<c>a SQLite file</c>).</summary>
    public required string Summary { get; init; }

    /// <summary>
    /// Opens the store from the <c>Pipeline</c> section (the flags' keys), reads its summary with
    /// lists at most <c>maxListed</c> long, and closes it. A store that cannot be opened or read
    /// throws <see cref="ModuleRunException"/>, whose message names it without secrets.
    /// </summary>
    public required Func<IConfiguration, int, CancellationToken, Task<StoreStatus>> ReadAsync { get; init; }
}

/// <summary>A store's summary as <c>pipeline status</c> shows it.</summary>
/// <param name="Kind">The module's source kind (<c>sqlite</c>, <c>postgres</c>).</param>
/// <param name="Where">The store's address, safe to print (a path, a connection string without its password).</param>
/// <param name="Summary">The store at the moment it was read.</param>
public sealed record StoreStatus(string Kind, string Where, QueueSummary Summary);
