using Microsoft.Extensions.DependencyInjection;

namespace Pipeline.Modules;

/// <summary>Registers backends.</summary>
public static class PipelineModuleServiceCollectionExtensions
{
    /// <summary>
    /// Adds <paramref name="module"/>'s sources, claimers and sinks to what a hosted worker (and
    /// <c>pipeline worker</c>) can choose from. A backend's own extension calls this
    /// (<c>services.AddPipelineNats()</c>); adding the same module type twice keeps the first.
    /// </summary>
    public static IServiceCollection AddPipelineModule(this IServiceCollection services, IPipelineModule module)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(module);
        if (!services.Any(d => d.ServiceType == typeof(IPipelineModule) && d.ImplementationInstance?.GetType() == module.GetType()))
        {
            services.AddSingleton(module);
        }

        return services;
    }
}
