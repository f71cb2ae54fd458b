using Pipeline.Modules;
using Pipeline.Storage.Sqlite.Modules;

// In the DI namespace, as Microsoft.Extensions packages do: the registration line needs no using.
namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers a SQLite file as a pipeline backend.</summary>
public static class SqliteServiceCollectionExtensions
{
    /// <summary>
    /// Adds the SQLite module: source <c>sqlite</c> (a queued-work store in one file, <c>pipeline.db</c>
    /// by default) becomes available to the hosted worker, configured by <c>Pipeline:Sqlite</c>.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Changes the options bound from configuration (<c>o => o with { ... }</c>); null keeps them.</param>
    public static IServiceCollection AddPipelineSqlite(this IServiceCollection services, Func<SqliteWorkerOptions, SqliteWorkerOptions>? configure = null) =>
        services.AddPipelineModule(new SqliteModule(configure));
}
