using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pipeline.Commands;

namespace Pipeline.Dispatch;

/// <summary>
/// Builds a <see cref="ToolRegistry"/> from the tools registered in DI
/// (<see cref="PipelineToolServiceCollectionExtensions.AddPipelineTool{TTool}(IServiceCollection, string, ServiceLifetime)"/>,
/// the built-in ones included). Registered by every <c>AddPipelineTool</c>; the hosted worker
/// builds its registry here when its run starts.
/// </summary>
public sealed class ToolRegistryFactory
{
    private readonly IServiceProvider _services;

    /// <summary>Creates the factory over the container's root <paramref name="services"/>.</summary>
    public ToolRegistryFactory(IServiceProvider services) => _services = services ?? throw new ArgumentNullException(nameof(services));

    /// <summary>
    /// The registry: a singleton tool as itself (resolved now), a scoped one as an adapter that
    /// resolves it from a new scope per command.
    /// </summary>
    /// <exception cref="InvalidOperationException">Two registrations share a kind (naming it and both types).</exception>
    public ToolRegistry Create()
    {
        var scopes = _services.GetRequiredService<IServiceScopeFactory>();
        var logger = _services.GetService<ILoggerFactory>()?.CreateLogger("Pipeline.Dispatch") ?? NullLogger.Instance;
        var byKind = new Dictionary<string, PipelineToolRegistration>(StringComparer.Ordinal);
        var tools = new List<ITool>();
        foreach (var registration in _services.GetServices<PipelineToolRegistration>())
        {
            // AddPipelineTool refuses a second kind already; this catches descriptors added by hand.
            if (byKind.TryGetValue(registration.Kind, out var first))
            {
                throw PipelineToolServiceCollectionExtensions.Duplicate(registration.Kind, first.ToolType, registration.ToolType);
            }

            byKind.Add(registration.Kind, registration);
            if (!registration.IsEnabled(_services))
            {
                continue;
            }

            tools.Add(registration.Lifetime == ServiceLifetime.Singleton
                ? AsKind(registration.Kind, _services.GetRequiredKeyedService<ITool>(registration.ServiceKey))
                : new ScopedTool(registration, scopes, logger));
        }

        return new ToolRegistry(tools);
    }

    /// <summary>The tool itself when it says the registered kind (every built-in does), so the hot path has no adapter.</summary>
    private static ITool AsKind(string kind, ITool tool) =>
        string.Equals(tool.Kind, kind, StringComparison.Ordinal) ? tool : new KindedTool(kind, tool);

    /// <summary>A singleton tool registered under a kind other than its own <see cref="ITool.Kind"/>: the registration's wins.</summary>
    private sealed class KindedTool(string kind, ITool tool) : ITool
    {
        public string Kind => kind;

        public ValueTask<ToolResult> InvokeAsync(Command command, CancellationToken cancellationToken) =>
            tool.InvokeAsync(command, cancellationToken);
    }
}
