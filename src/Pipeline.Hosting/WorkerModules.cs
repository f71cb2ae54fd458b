using Microsoft.Extensions.Configuration;
using Pipeline.Modules;

namespace Pipeline.Hosting;

/// <summary>The hosted worker's options as the modules see them: the choice of kinds, and the <c>Pipeline</c> section they read their own settings from.</summary>
public static class WorkerModules
{
    /// <summary>
    /// Resolves the options' source, claimer and sink kinds to the registered modules and has
    /// each plan its part, reading its section of <paramref name="section"/>.
    /// </summary>
    /// <param name="modules">The registered modules.</param>
    /// <param name="options">The worker's options.</param>
    /// <param name="section">The <c>Pipeline</c> section; null when the options were built in code.</param>
    public static PipelineSetup Prepare(PipelineModules modules, PipelineWorkerOptions options, IConfiguration? section)
    {
        ArgumentNullException.ThrowIfNull(modules);
        ArgumentNullException.ThrowIfNull(options);
        return modules.Prepare(new PipelineChoice(options.Source, options.Claimer, options.Events), ContextFor(options, section));
    }

    private static ModuleContext ContextFor(PipelineWorkerOptions options, IConfiguration? section)
    {
        // Modules read their keys from the Pipeline section; options built in code have none, so
        // the worker's own keys a module reads (the file source's CommandsFile) are laid over it.
        var builder = new ConfigurationBuilder();
        if (section is not null)
        {
            builder.AddConfiguration(section, shouldDisposeConfiguration: false);
        }

        builder.AddInMemoryCollection([new(nameof(PipelineWorkerOptions.CommandsFile), options.CommandsFile)]);
        return new ModuleContext(builder.Build(), options.Engine) { Root = PathOf(section) };
    }

    /// <summary>The key messages put before a setting: the section's path as configured (<c>Pipeline</c>, or the section the worker was bound from).</summary>
    internal static string PathOf(IConfiguration? section) =>
        (section as IConfigurationSection)?.Path is { Length: > 0 } path ? path : PipelineWorkerOptions.SectionName;
}
