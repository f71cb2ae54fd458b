using Pipeline.Modules;
using Pipeline.Storage.Postgres.Modules;

// In the DI namespace, as Microsoft.Extensions packages do: the registration line needs no using.
namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers a PostgreSQL database as a pipeline backend.</summary>
public static class PostgresServiceCollectionExtensions
{
    /// <summary>
    /// Adds the PostgreSQL module: source <c>postgres</c> (a queued-work store many workers on many
    /// machines share) becomes available to the hosted worker, configured by <c>Pipeline:Postgres</c>.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Changes the options bound from configuration (<c>o => o with { ... }</c>); null keeps them.</param>
    public static IServiceCollection AddPipelinePostgres(this IServiceCollection services, Func<PostgresWorkerOptions, PostgresWorkerOptions>? configure = null) =>
        services.AddPipelineModule(new PostgresModule(configure));
}
