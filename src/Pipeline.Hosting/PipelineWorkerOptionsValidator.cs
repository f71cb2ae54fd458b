using System.Globalization;
using Microsoft.Extensions.Options;
using Pipeline.Nats.Sources;

namespace Pipeline.Hosting;

/// <summary>
/// Checks <see cref="PipelineWorkerOptions"/> when the host starts (<c>ValidateOnStart</c>), so a
/// misconfigured worker fails before it pulls anything. Every message names the setting by its
/// configuration key (<c>Pipeline:Engine:Dispatch:Parallelism</c>), as a user would type it.
/// </summary>
public sealed class PipelineWorkerOptionsValidator : IValidateOptions<PipelineWorkerOptions>
{
    private const string Root = PipelineWorkerOptions.SectionName;

    /// <inheritdoc/>
    public ValidateOptionsResult Validate(string? name, PipelineWorkerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        var kind = options.Source?.Trim().ToLowerInvariant();
        if (kind is null || !SourceKinds.All.Contains(kind))
        {
            failures.Add($"{Root}:Source '{options.Source}' is not a known source kind; known: {string.Join(", ", SourceKinds.All)}.");
        }

        Check(failures, $"{Root}:Engine", options.Engine.Validate);
        if (options.Tools.MaxOutputBytes is < 1 or > Dispatch.BuiltInToolOptions.HardMaxOutputBytes)
        {
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"{Root}:Tools:MaxOutputBytes must be from 1 to {Dispatch.BuiltInToolOptions.HardMaxOutputBytes} (it is {options.Tools.MaxOutputBytes})."));
        }

        if (options.ShutdownMargin < TimeSpan.Zero)
        {
            failures.Add($"{Root}:ShutdownMargin must not be negative.");
        }

        if (kind == SourceKinds.File && string.IsNullOrWhiteSpace(options.CommandsFile))
        {
            failures.Add($"{Root}:CommandsFile is required with {Root}:Source 'file' (a JSON Lines file of commands).");
        }

        var nats = options.Nats;
        if (kind == SourceKinds.Nats)
        {
            if (nats.Connection is null || string.IsNullOrWhiteSpace(nats.Connection.Url))
            {
                failures.Add($"{Root}:Nats:Connection:Url is required with {Root}:Source 'nats' (e.g. nats://127.0.0.1:4222).");
            }
            else
            {
                Check(failures, $"{Root}:Nats:Connection", nats.Connection.Validate);
            }

            Check(failures, $"{Root}:Nats:Source", () => nats.Source.ValidateFor(options.Engine));
            if (nats.KvClaimer)
            {
                Check(failures, $"{Root}:Nats:Claimer", nats.Claimer.Validate);
            }
        }

        if (options.Events == "nats")
        {
            if (kind != SourceKinds.Nats && (nats.Connection is null || string.IsNullOrWhiteSpace(nats.Connection.Url)))
            {
                failures.Add($"{Root}:Events 'nats' needs {Root}:Nats:Connection:Url.");
            }

            Check(failures, $"{Root}:Nats:Events", nats.Events.Validate);
        }
        else if (options.Events is { } events && string.IsNullOrWhiteSpace(events))
        {
            failures.Add($"{Root}:Events must be null (none), 'nats', '-' (stdout) or a file path, not ''.");
        }

        if (options.Telemetry.OtlpProtocol is not ("grpc" or "http/protobuf"))
        {
            failures.Add($"{Root}:Telemetry:OtlpProtocol '{options.Telemetry.OtlpProtocol}' must be grpc or http/protobuf.");
        }

        if (options.Telemetry.OtlpEndpoint is { IsAbsoluteUri: false })
        {
            failures.Add($"{Root}:Telemetry:OtlpEndpoint must be an absolute URL, e.g. http://127.0.0.1:4317.");
        }

        if (options.Telemetry.MetricInterval <= TimeSpan.Zero)
        {
            failures.Add($"{Root}:Telemetry:MetricInterval must be positive.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    // The option records validate themselves and name the property; the prefix makes it a full
    // configuration key ('Dispatch.Parallelism must be ...' → 'Pipeline:Engine:Dispatch.Parallelism must be ...').
    private static void Check(List<string> failures, string prefix, Action validate)
    {
        try
        {
            validate();
        }
        catch (ArgumentException ex)
        {
            // ArgumentException appends " (Parameter 'x')" and the out-of-range value on a second line.
            var message = ex.Message.Split('\n')[0].Trim().Replace($" (Parameter '{ex.ParamName}')", string.Empty, StringComparison.Ordinal);
            failures.Add($"{prefix}:{message}");
        }
    }
}
