using System.Globalization;
using Microsoft.Extensions.Configuration;
using Pipeline.Modules;

namespace Pipeline.Nats.Modules;

/// <summary>
/// NATS as a pipeline backend: the JetStream durable-consumer source (<c>Pipeline:Source nats</c>),
/// the KV claimer (<c>Pipeline:Claimer nats-kv</c>) and the JetStream event sink
/// (<c>Pipeline:Events nats</c>), configured by the <c>Pipeline:Nats</c> section
/// (<see cref="NatsWorkerOptions"/>). A host registers it with <c>services.AddPipelineNats()</c>.
/// </summary>
public sealed class NatsModule : IPipelineModule
{
    /// <summary>The source and sink kind.</summary>
    public const string Kind = "nats";

    /// <summary>The KV claimer's kind.</summary>
    public const string KvClaimerKind = "nats-kv";

    /// <summary>The module's section under <c>Pipeline</c>.</summary>
    public const string SectionName = "Nats";

    private readonly Func<NatsWorkerOptions, NatsWorkerOptions>? _configure;

    /// <param name="configure">Changes the options bound from configuration (<c>o => o with { ... }</c>), for options set in code; null keeps them.</param>
    public NatsModule(Func<NatsWorkerOptions, NatsWorkerOptions>? configure = null)
    {
        _configure = configure;
    }

    /// <inheritdoc/>
    public string Name => Kind;

    /// <inheritdoc/>
    public IReadOnlyList<string> SourceKinds { get; } = [Kind];

    /// <inheritdoc/>
    public IReadOnlyList<string> ClaimerKinds { get; } = [KvClaimerKind];

    /// <inheritdoc/>
    public IReadOnlyList<string> SinkKinds { get; } = [Kind];

    /// <inheritdoc/>
    public ModuleCommandLine? WorkerCommandLine => NatsCommandLine.Worker;

    /// <inheritdoc/>
    public ModuleEnqueue? Enqueue { get; } = new()
    {
        CommandLine = NatsEnqueuer.CommandLine(),
        Summary = "NATS JetStream",
        Open = NatsEnqueuer.Open,
    };

    /// <inheritdoc/>
    public string? ImpliedClaimer(ModuleContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        // Pipeline:Nats:KvClaimer=true, the older spelling of Pipeline:Claimer=nats-kv.
        var alias = bool.TryParse(context.Configuration[$"{SectionName}:{nameof(NatsWorkerOptions.KvClaimer)}"], out var on) && on;
        return (_configure is null ? alias : _configure(new NatsWorkerOptions { KvClaimer = alias }).KvClaimer) ? KvClaimerKind : null;
    }

    /// <summary>
    /// Binds the <c>Pipeline:Nats</c> section (<paramref name="section"/>); a list that is
    /// configured replaces its default. (The binder adds configured items to a list that already
    /// has a value, so <c>Subjects:0=orders.&gt;</c> would otherwise also keep <c>pipeline.commands.&gt;</c>.)
    /// </summary>
    /// <exception cref="InvalidOperationException">A value cannot be converted (the message names its key).</exception>
    public static NatsWorkerOptions Bind(IConfiguration section)
    {
        ArgumentNullException.ThrowIfNull(section);
        var options = section.Get<NatsWorkerOptions>() ?? new NatsWorkerOptions();
        if (section.GetSection("Source:Subjects").Get<string[]>() is { Length: > 0 } subjects)
        {
            options = options with { Source = options.Source with { Subjects = subjects } };
        }

        if (section.GetSection("Events:Subjects").Get<string[]>() is { Length: > 0 } eventSubjects)
        {
            options = options with { Events = options.Events with { Subjects = eventSubjects } };
        }

        // An empty credential or file is none (as an empty flag or environment variable always was).
        return options.Connection is not { } connection ? options : options with
        {
            Connection = connection with
            {
                User = Blank(connection.User),
                Password = Blank(connection.Password),
                Token = Blank(connection.Token),
                CredsFile = Blank(connection.CredsFile),
                NKeyFile = Blank(connection.NKeyFile),
                TlsCaFile = Blank(connection.TlsCaFile),
                TlsCertFile = Blank(connection.TlsCertFile),
                TlsKeyFile = Blank(connection.TlsKeyFile),
            },
        };
    }

    /// <summary>The options a run uses: bound from the context's <c>Nats</c> section, then changed by the code's configure, if any.</summary>
    /// <exception cref="InvalidOperationException">A value cannot be converted (the message names its key).</exception>
    public NatsWorkerOptions OptionsFor(ModuleContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var options = Bind(context.Configuration.GetSection(SectionName));
        return _configure is null ? options : _configure(options) ?? throw new InvalidOperationException("The NATS module's configure returned null.");
    }

    private static string? Blank(string? value) => string.IsNullOrEmpty(value) ? null : value;

    /// <inheritdoc/>
    public IModulePlan Plan(ModuleSelection selection, ModuleContext context)
    {
        ArgumentNullException.ThrowIfNull(selection);
        ArgumentNullException.ThrowIfNull(context);
        NatsWorkerOptions options;
        try
        {
            options = OptionsFor(context);
        }
        catch (InvalidOperationException ex)
        {
            return new NatsPlan(selection, new NatsWorkerOptions(), context.Engine, [ex.Message]);
        }

        var errors = new List<string>();
        var section = context.Key(SectionName);
        if (selection.Any)
        {
            if (options.Connection is null || string.IsNullOrWhiteSpace(options.Connection.Url))
            {
                errors.Add(
                    selection.Source is not null ? $"{section}:Connection:Url is required with {context.Key("Source")} '{Kind}' (e.g. nats://127.0.0.1:4222)."
                    : selection.Sink is not null ? $"{context.Key("Events")} '{Kind}' needs {section}:Connection:Url."
                    : $"{context.Key("Claimer")} '{KvClaimerKind}' needs {section}:Connection:Url.");
            }
            else
            {
                ModuleErrors.Check(errors, $"{section}:Connection", options.Connection.Validate);
            }
        }

        if (selection.Source is not null)
        {
            ModuleErrors.Check(errors, $"{section}:Source", () => options.Source.ValidateFor(context.Engine));
        }

        if (selection.Claimer is not null)
        {
            ModuleErrors.Check(errors, $"{section}:Claimer", options.Claimer.Validate);
        }

        if (selection.Sink is not null)
        {
            ModuleErrors.Check(errors, $"{section}:Events", options.Events.Validate);
        }

        return new NatsPlan(selection, options, context.Engine, errors);
    }

    private sealed class NatsPlan(ModuleSelection selection, NatsWorkerOptions options, Engine.PipelineOptions engine, IReadOnlyList<string> errors) : IModulePlan
    {
        public IReadOnlyList<string> Errors => errors;

        public SourceDescription? Source => selection.Source is null ? null : new SourceDescription(
            options.Connection?.DisplayUrl ?? "(no server)",
            $"stream {options.Source.Stream} consumer {options.Source.Consumer}",
            Ending(options.Source));

        public string? SinkName => selection.Sink is null ? null : $"NATS subjects {options.Events.SubjectTemplate}";

        public IModuleRun Open(ModuleRunContext context) => new NatsModuleRun(selection, options, engine, context);

        private static string Ending(Sources.NatsSourceOptions source) =>
            source.IdleTimeout is not { } idle ? string.Empty
            : source.DrainTimeout is { } drain ? string.Create(CultureInfo.InvariantCulture, $", ending after {idle.TotalSeconds:0} s idle once the consumer holds nothing (at most {drain.TotalSeconds:0} s idle while it does)")
            : string.Create(CultureInfo.InvariantCulture, $", ending after {idle.TotalSeconds:0} s idle");
    }
}
