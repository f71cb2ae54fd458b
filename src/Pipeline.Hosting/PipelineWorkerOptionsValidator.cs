using System.Globalization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using Pipeline.Engine;
using Pipeline.Modules;

namespace Pipeline.Hosting;

/// <summary>
/// Checks <see cref="PipelineWorkerOptions"/>: the worker runs it as it starts, so a
/// misconfigured worker stops before it pulls or truncates anything. Every setting that cannot
/// work is reported, not only the first, each named by its configuration key as typed
/// (<c>Pipeline:Engine:Dispatch:Parallelism</c>): values that cannot be converted, values out of
/// range, and files that cannot be read or written. The source, claimer and sink kinds are looked
/// up among the registered modules, and each module used checks its own section.
/// </summary>
public sealed class PipelineWorkerOptionsValidator : IValidateOptions<PipelineWorkerOptions>
{
    private readonly PipelineModules _modules;
    private readonly IConfiguration? _section;

    /// <param name="modules">The registered modules.</param>
    /// <param name="section">The <c>Pipeline</c> section the modules read their own sections from; null when the options were built in code.</param>
    public PipelineWorkerOptionsValidator(PipelineModules modules, IConfiguration? section = null)
    {
        ArgumentNullException.ThrowIfNull(modules);
        _modules = modules;
        _section = section;
        Root = WorkerModules.PathOf(section);
    }

    // The section's key as the user typed it (Pipeline, or the section the worker was bound from).
    private string Root { get; }

    /// <inheritdoc/>
    public ValidateOptionsResult Validate(string? name, PipelineWorkerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        if (_section is not null)
        {
            // Values that could not be converted (bound leniently, keeping their defaults).
            PipelineWorkerServiceCollectionExtensions.Bind(_section, failures);
        }

        failures.AddRange(options.Engine.FindErrors().Select(e => e.Under($"{Root}:Engine")));
        if (options.Tools.MaxOutputBytes is < 1 or > Dispatch.BuiltInToolOptions.HardMaxOutputBytes)
        {
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"{Root}:Tools:MaxOutputBytes must be from 1 to {Dispatch.BuiltInToolOptions.HardMaxOutputBytes} (it is {options.Tools.MaxOutputBytes})."));
        }

        // Bounded above too: the host arms its shutdown timeout (the drain, the settles and this) as a timer.
        if (!SettingLimits.IsDuration(options.ShutdownMargin, positive: false))
        {
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"{Root}:ShutdownMargin {SettingLimits.DurationRange(positive: false)} (it is {options.ShutdownMargin})."));
        }

        // The source, the claimer and the sink: each kind's module, and its own section.
        failures.AddRange(WorkerModules.Prepare(_modules, options, _section).Errors);

        if (options.Telemetry.OtlpProtocol is not ("grpc" or "http/protobuf"))
        {
            failures.Add($"{Root}:Telemetry:OtlpProtocol '{options.Telemetry.OtlpProtocol}' must be grpc or http/protobuf.");
        }

        if (options.Telemetry.OtlpEndpoint is { IsAbsoluteUri: false })
        {
            failures.Add($"{Root}:Telemetry:OtlpEndpoint must be an absolute URL, e.g. http://127.0.0.1:4317.");
        }

        if (!SettingLimits.IsDuration(options.Telemetry.MetricInterval, positive: true))
        {
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"{Root}:Telemetry:MetricInterval {SettingLimits.DurationRange(positive: true)} (it is {options.Telemetry.MetricInterval})."));
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
