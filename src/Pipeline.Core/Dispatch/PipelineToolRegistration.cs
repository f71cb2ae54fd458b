using Microsoft.Extensions.DependencyInjection;

namespace Pipeline.Dispatch;

/// <summary>
/// One tool registered in DI by <c>AddPipelineTool</c>: its <c>tool_kind</c>, its type and its
/// lifetime. <see cref="ToolRegistryFactory"/> builds a <see cref="ToolRegistry"/> from every
/// registration in the container (resolve <c>IEnumerable&lt;PipelineToolRegistration&gt;</c> to list them).
/// </summary>
public sealed class PipelineToolRegistration
{
    private readonly Func<IServiceProvider, bool>? _enabled;

    internal PipelineToolRegistration(string kind, Type toolType, ServiceLifetime lifetime, Func<IServiceProvider, bool>? enabled)
    {
        Kind = kind;
        ToolType = toolType;
        Lifetime = lifetime;
        _enabled = enabled;
    }

    /// <summary>The <c>tool_kind</c> commands name to run this tool.</summary>
    public string Kind { get; }

    /// <summary>The tool's class.</summary>
    public Type ToolType { get; }

    /// <summary>
    /// <see cref="ServiceLifetime.Scoped"/> (the default): a new tool from a new DI scope for each
    /// command, disposed with the scope when its run ends. <see cref="ServiceLifetime.Singleton"/>:
    /// one tool for every command, resolved once, run with no scope. <see cref="ServiceLifetime.Transient"/>
    /// is run as scoped (one resolve per command's scope).
    /// </summary>
    public ServiceLifetime Lifetime { get; }

    /// <summary>
    /// The key the tool itself is registered under (a keyed <see cref="ITool"/>): this registration,
    /// so no other keyed service can collide with it and two registrations never share one.
    /// </summary>
    internal object ServiceKey => this;

    /// <summary>Whether the tool is in the registry (the shell tool only with <see cref="BuiltInToolOptions.EnableShell"/>).</summary>
    internal bool IsEnabled(IServiceProvider services) => _enabled?.Invoke(services) ?? true;

    /// <inheritdoc/>
    public override string ToString() => $"{Kind}: {ToolType.FullName} ({Lifetime})";
}
