using Pipeline.Modules;
using Pipeline.Nats.Modules;

// In the DI namespace, as Microsoft.Extensions packages do: the registration line needs no using.
namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers NATS as a pipeline backend.</summary>
public static class NatsServiceCollectionExtensions
{
    /// <summary>
    /// Adds the NATS module: source <c>nats</c>, claimer <c>nats-kv</c> and events <c>nats</c>
    /// become available to the hosted worker, configured by <c>Pipeline:Nats</c>.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Changes the options bound from configuration (<c>o => o with { ... }</c>); null keeps them.</param>
    public static IServiceCollection AddPipelineNats(this IServiceCollection services, Func<NatsWorkerOptions, NatsWorkerOptions>? configure = null) =>
        services.AddPipelineModule(new NatsModule(configure));
}
