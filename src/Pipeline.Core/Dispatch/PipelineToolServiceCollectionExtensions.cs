using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Pipeline.Tools;

namespace Pipeline.Dispatch;

/// <summary>
/// Tools registered in DI, as MassTransit registers consumers: <c>services.AddPipelineTool&lt;UpperTool&gt;("upper")</c>.
/// The hosted worker (<c>AddPipelineWorker</c>) runs every tool registered so, the built-in ones included.
/// </summary>
public static class PipelineToolServiceCollectionExtensions
{
    /// <summary>
    /// Registers <typeparamref name="TTool"/> for commands whose <c>tool_kind</c> is
    /// <paramref name="kind"/>, built by the container (constructor injection).
    /// </summary>
    /// <remarks>
    /// Scoped by default, as MassTransit's consumers are: each command gets a new tool from a new
    /// DI scope, so the tool may take scoped services (a <c>DbContext</c>) and never shares state
    /// between commands that run at once; the scope is disposed when the run ends, also on a
    /// failure, a timeout or a cancellation. That costs a scope and a tool per command (well under
    /// a microsecond and a few hundred bytes, beside a tool's own work). A tool that is stateless,
    /// thread-safe and takes only singletons may say <see cref="ServiceLifetime.Singleton"/>: it is
    /// resolved once and run with no scope, as the built-in tools are.
    /// </remarks>
    /// <exception cref="InvalidOperationException">A tool is registered for <paramref name="kind"/> already (the message names both types).</exception>
    public static IServiceCollection AddPipelineTool<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TTool>(
        this IServiceCollection services, string kind, ServiceLifetime lifetime = ServiceLifetime.Scoped)
        where TTool : class, ITool =>
        services.AddTool(kind, typeof(TTool), lifetime, null, key => ServiceDescriptor.DescribeKeyed(typeof(ITool), key, typeof(TTool), lifetime));

    /// <summary>
    /// Registers the tool <paramref name="factory"/> makes (from the command's scope, or the root
    /// for a singleton) for commands whose <c>tool_kind</c> is <paramref name="kind"/>; lifetimes
    /// as in <see cref="AddPipelineTool{TTool}(IServiceCollection, string, ServiceLifetime)"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">A tool is registered for <paramref name="kind"/> already (the message names both types).</exception>
    public static IServiceCollection AddPipelineTool<TTool>(
        this IServiceCollection services, string kind, Func<IServiceProvider, TTool> factory, ServiceLifetime lifetime = ServiceLifetime.Scoped)
        where TTool : class, ITool
    {
        ArgumentNullException.ThrowIfNull(factory);
        return services.AddTool(kind, typeof(TTool), lifetime, null, key => ServiceDescriptor.DescribeKeyed(typeof(ITool), key, (sp, _) => factory(sp), lifetime));
    }

    /// <summary>
    /// Registers the built-in tools the same way, as singletons: <c>noop</c>, <c>delay</c>,
    /// <c>echo</c>, <c>http</c>, and <c>shell</c> only when <see cref="BuiltInToolOptions.EnableShell"/>
    /// is set in the options <paramref name="options"/> gives (read when the registry is built,
    /// so they may come from bound configuration). The <c>http</c> tool takes its client from
    /// <see cref="IHttpClientFactory"/> (<see cref="HttpTool.HttpClientName"/>: no client-wide timeout, the
    /// tool sets its own; no per-request log lines) unless <see cref="BuiltInToolOptions.HttpClient"/>
    /// is set. A second call registers the tools no more, while its <paramref name="options"/> replace the first's.
    /// </summary>
    public static IServiceCollection AddPipelineBuiltInTools(this IServiceCollection services, Func<IServiceProvider, BuiltInToolOptions>? options = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        if (options is not null)
        {
            services.AddSingleton<BuiltInToolOptions>(options); // the last one registered is the one resolved
        }
        else
        {
            services.TryAddSingleton(new BuiltInToolOptions());
        }

        if (services.Any(d => d.ServiceType == typeof(BuiltInToolsMarker)))
        {
            return services;
        }

        services.AddSingleton<BuiltInToolsMarker>();
        services.AddHttpClient(HttpTool.HttpClientName)
            .ConfigureHttpClient(client => client.Timeout = Timeout.InfiniteTimeSpan)
            .RemoveAllLoggers();
        const ServiceLifetime singleton = ServiceLifetime.Singleton;
        static BuiltInToolOptions Options(IServiceProvider sp) => sp.GetRequiredService<BuiltInToolOptions>();
        services.AddPipelineTool("noop", _ => new NoopTool(), singleton);
        services.AddPipelineTool("delay", sp => new DelayTool(Options(sp).TimeProvider), singleton);
        services.AddPipelineTool("echo", sp => new EchoTool(Options(sp).MaxOutputBytes), singleton);
        services.AddPipelineTool("http", sp =>
        {
            var o = Options(sp);
            return o.HttpClient is { } client
                ? new HttpTool(client, o.MaxOutputBytes)
                : new HttpTool(sp.GetRequiredService<IHttpClientFactory>(), o.MaxOutputBytes);
        }, singleton);
        return services.AddTool("shell", typeof(ShellTool), singleton, sp => Options(sp).EnableShell, key =>
            ServiceDescriptor.DescribeKeyed(typeof(ITool), key, (sp, _) => new ShellTool(Options(sp).MaxOutputBytes), singleton));
    }

    internal static InvalidOperationException Duplicate(string kind, Type first, Type second) =>
        new($"tool_kind '{kind}' is registered twice, for {first.FullName} and for {second.FullName}: register one tool per kind.");

    private static IServiceCollection AddTool(
        this IServiceCollection services, string kind, Type toolType, ServiceLifetime lifetime, Func<IServiceProvider, bool>? enabled, Func<object, ServiceDescriptor> tool)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrWhiteSpace(kind);
        if (!Enum.IsDefined(lifetime))
        {
            throw new ArgumentOutOfRangeException(nameof(lifetime), lifetime, "lifetime must be Singleton, Scoped or Transient.");
        }

        // Refused here, at the line that registers it twice, rather than when the host starts.
        foreach (var descriptor in services)
        {
            if (descriptor is { ServiceType: var type, IsKeyedService: false, ImplementationInstance: PipelineToolRegistration existing }
                && type == typeof(PipelineToolRegistration) && string.Equals(existing.Kind, kind, StringComparison.Ordinal))
            {
                throw Duplicate(kind, existing.ToolType, toolType);
            }
        }

        var registration = new PipelineToolRegistration(kind, toolType, lifetime, enabled);
        services.AddSingleton(registration);
        services.Add(tool(registration.ServiceKey));
        services.TryAddSingleton<ToolRegistryFactory>();
        return services;
    }

    /// <summary>Says the built-in tools are registered, so a second call does not register them again.</summary>
    private sealed class BuiltInToolsMarker;
}
