using System.Globalization;
using Microsoft.Extensions.Configuration;
using Pipeline.Engine;
using Pipeline.Modules;

namespace Pipeline.Storage;

/// <summary>What a store module's options record holds besides its store's own settings: the store source's.</summary>
public interface IStoreWorkerOptions
{
    /// <summary>The store source: lease, claim sizes, owner, idle end (<see cref="StoreSourceOptions"/> documents each default).</summary>
    StoreSourceOptions Source { get; }
}

/// <summary>Why a store is opened: a worker and <c>pipeline enqueue</c> create a missing one, <c>pipeline status</c> only reads one that is there.</summary>
public enum StoreOpening
{
    /// <summary>For a worker: created with its schema when missing.</summary>
    Worker,

    /// <summary>For <c>pipeline enqueue</c>: created with its schema when missing.</summary>
    Enqueue,

    /// <summary>For <c>pipeline status</c>: a store that is not there is an error, never created.</summary>
    Status,
}

/// <summary>
/// A queued-work store (<see cref="IQueuedWorkStore"/>) as a pipeline backend: the part every
/// store shares. It binds <c>Pipeline:&lt;Section&gt;</c> into the backend's options record
/// (the store's own settings and <see cref="IStoreWorkerOptions.Source"/>), names every setting
/// that cannot work at once, opens the store in the run and runs <see cref="StoreCommandSource"/>
/// over it, says what the store still holds at an idle end, and turns a store that fails for good
/// (<see cref="StoreCommandSource.Fault"/>: a read-only file, a full disk) into one
/// <see cref="ModuleRunException"/> that fails the run. It also offers <c>pipeline enqueue</c>
/// (<see cref="StoreEnqueuer"/>) and <c>pipeline status</c> on the same store. A backend derives
/// one sealed class that says how its store is named, checked and opened.
/// </summary>
/// <typeparam name="TOptions">The backend's options record, bound from its section.</typeparam>
public abstract class StoreModule<TOptions> : IPipelineModule
    where TOptions : class, IStoreWorkerOptions, new()
{
    /// <summary>The longest <c>--exit-when-idle</c>: one day, in seconds.</summary>
    public const int MaxIdleSeconds = SettingLimits.LongestMilliseconds / 1000;

    private const int MaxTimeoutMs = SettingLimits.LongestMilliseconds;

    private readonly Func<TOptions, TOptions>? _configure;
    private ModuleCommandLine? _worker;
    private ModuleEnqueue? _enqueue;
    private ModuleStatus? _status;

    /// <param name="kind">The source kind (<c>sqlite</c>), also the module's name.</param>
    /// <param name="sectionName">The section under <c>Pipeline</c> (<c>Sqlite</c>).</param>
    /// <param name="configure">Changes the options bound from configuration (<c>o => o with { ... }</c>); null keeps them.</param>
    protected StoreModule(string kind, string sectionName, Func<TOptions, TOptions>? configure)
    {
        Kind = kind;
        SectionName = sectionName;
        _configure = configure;
        SourceKinds = [kind];
        Section = new ModuleSection(sectionName, typeof(TOptions));
    }

    /// <summary>The source kind, as <c>Pipeline:Source</c> names it.</summary>
    public string Kind { get; }

    /// <summary>The module's section under <c>Pipeline</c>.</summary>
    public string SectionName { get; }

    /// <inheritdoc/>
    public string Name => Kind;

    /// <inheritdoc/>
    public IReadOnlyList<string> SourceKinds { get; }

    /// <inheritdoc/>
    public IReadOnlyList<string> ClaimerKinds { get; } = [];

    /// <inheritdoc/>
    public IReadOnlyList<string> SinkKinds { get; } = [];

    /// <inheritdoc/>
    public ModuleSection? Section { get; }

    /// <inheritdoc/>
    public ModuleCommandLine? WorkerCommandLine => _worker ??= new ModuleCommandLine
    {
        Selector = Selector,
        SourceKind = Kind,
        Summary = SourceSummary,
        Flags = [.. WorkerFlags(), .. StoreFlags],
        Check = CheckFlags,
    };

    /// <inheritdoc/>
    public ModuleEnqueue? Enqueue => _enqueue ??= new ModuleEnqueue
    {
        CommandLine = new ModuleCommandLine { Selector = Selector, Flags = StoreFlags, Summary = StoreSummary, Check = CheckFlags },
        Summary = StoreSummary,
        Open = OpenEnqueuer,
    };

    /// <inheritdoc/>
    public ModuleStatus? Status => _status ??= new ModuleStatus
    {
        CommandLine = new ModuleCommandLine { Selector = Selector, Flags = StoreFlags, Summary = StoreSummary, Check = CheckFlags },
        Summary = StoreSummary,
        ReadAsync = ReadStatusAsync,
    };

    /// <summary>The store's name as messages say it (<c>SQLite</c>, <c>PostgreSQL</c>).</summary>
    protected abstract string StoreName { get; }

    /// <summary>The store's name for telemetry (<c>sqlite</c>, <c>postgresql</c>).</summary>
    protected abstract string SystemName { get; }

    /// <summary>The flag that selects the module and says where the store is (<c>--sqlite FILE</c>).</summary>
    protected abstract ModuleFlag Selector { get; }

    /// <summary>What the worker's source is, as help says it (<c>a SQLite file (the default: pipeline.db here)</c>).</summary>
    protected abstract string SourceSummary { get; }

    /// <summary>Where <c>enqueue</c> and <c>status</c> find the store, as help says it (<c>a SQLite file</c>).</summary>
    protected abstract string StoreSummary { get; }

    /// <summary>The store's own flags after the selector, shared by <c>worker</c>, <c>enqueue</c> and <c>status</c>. Default none.</summary>
    protected virtual IReadOnlyList<ModuleFlag> StoreFlags => [];

    /// <summary>Binds the module's section (<paramref name="section"/>, named <paramref name="path"/> in messages), each value that cannot be converted added to <paramref name="errors"/>.</summary>
    public TOptions Bind(IConfiguration section, string path, ICollection<string> errors)
    {
        ArgumentNullException.ThrowIfNull(section);
        var options = Normalize(SettingsBinder.Bind<TOptions>(section, path, errors));
        return _configure is null ? options : _configure(options) ?? throw new InvalidOperationException($"The {Kind} module's configure returned null.");
    }

    /// <inheritdoc/>
    public string? ImpliedClaimer(ModuleContext context) => null;

    /// <inheritdoc/>
    public IModulePlan Plan(ModuleSelection selection, ModuleContext context)
    {
        ArgumentNullException.ThrowIfNull(selection);
        ArgumentNullException.ThrowIfNull(context);
        // Values that cannot be converted are named and keep their defaults, so the checks below still run: every error at once.
        var errors = new List<string>();
        var section = context.Key(SectionName);
        var options = Bind(context.Configuration.GetSection(SectionName), section, errors);
        FindStoreErrors(options, section, errors);
        ModuleErrors.Add(errors, $"{section}:{nameof(IStoreWorkerOptions.Source)}", options.Source.FindErrors());
        // An owner left at its default is the engine's worker id (--worker-id), the name events carry too.
        var source = options.Source.Owner == DefaultOwner ? options.Source with { Owner = context.Engine.WorkerId } : options.Source;
        return new StorePlan(this, selection, options, source, errors);
    }

    /// <summary>Adds every store setting of <paramref name="options"/> that cannot work, each named under <paramref name="section"/> (<c>Pipeline:Sqlite</c>).</summary>
    protected abstract void FindStoreErrors(TOptions options, string section, ICollection<string> errors);

    /// <summary>The store's address, safe to print (a full path; a connection string without its password).</summary>
    protected abstract string Where(TOptions options);

    /// <summary>Opens the store (creating it with its schema when <paramref name="opening"/> allows). Errors are the store's own.</summary>
    protected abstract Task<IQueuedWorkStore> OpenStoreAsync(TOptions options, StoreOpening opening, CancellationToken cancellationToken);

    /// <summary>Whether opening failed in a way that may pass when tried again (a server not up yet). Default false.</summary>
    protected virtual bool IsTransientOpenError(Exception exception) => false;

    /// <summary>The one line a store that cannot be opened or used is reported with, without secrets. Default: the error's own message after the store's name and address.</summary>
    protected virtual string Explain(TOptions options, Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        return $"The {StoreName} store {Where(options)} cannot be used: {exception.Message}";
    }

    // What Explain says, as one sentence on one line: a driver's message may hold line breaks, and
    // the callers add a sentence after it ("Nothing was claimed.").
    private string OneLine(TOptions options, Exception exception)
    {
        var text = string.Join(' ', Explain(options, exception).Split((char[])['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        return text.EndsWith('.') ? text : text + ".";
    }

    /// <summary>The settings that cannot work in the flags' terms (<c>--postgres is not a connection string</c>); never a secret. Default none.</summary>
    protected virtual IReadOnlyList<string> CheckFlags(ModuleFlagValues values) => [];

    /// <summary>The options as bound, before the code's configure: a backend tidies them (an empty value that means none). Default unchanged.</summary>
    protected virtual TOptions Normalize(TOptions options) => options;

    /// <summary>The store source's flags every store's worker takes, each a key of <c>Pipeline:&lt;Section&gt;:Source</c>.</summary>
    private IEnumerable<ModuleFlag> WorkerFlags()
    {
        var source = $"Pipeline:{SectionName}:{nameof(IStoreWorkerOptions.Source)}";
        var defaults = new StoreSourceOptions();
        return
        [
            new ModuleFlag("--exit-when-idle", $"{source}:{nameof(StoreSourceOptions.IdleTimeout)}", "End once nothing has arrived for this many seconds, and print the summary (batch jobs, tests). Default: run until stopped.")
            {
                Kind = ModuleFlagKind.Seconds,
                Min = 1,
                Max = MaxIdleSeconds,
            },
            new ModuleFlag("--lease-ttl-ms", $"{source}:{nameof(StoreSourceOptions.LeaseTimeToLive)}", "A claim's lease, in milliseconds: renewed every third of it while a command is held; a worker that dies leaves its commands to another once it lapses.")
            {
                Kind = ModuleFlagKind.Milliseconds,
                Min = 1000,
                Max = MaxTimeoutMs,
                Default = (int)defaults.LeaseTimeToLive.TotalMilliseconds,
            },
            new ModuleFlag("--claim-batch", $"{source}:{nameof(StoreSourceOptions.ClaimSessions)}", "Sessions (executions) claimed in one round trip, one command each unless --session-batch says more.")
            {
                Kind = ModuleFlagKind.Integer,
                Min = 1,
                Max = 10_000,
                Default = defaults.ClaimSessions,
            },
            new ModuleFlag("--session-batch", $"{source}:{nameof(StoreSourceOptions.BatchesPerSession)}", "Consecutive commands of one session taken by one claim (more than 1 lets a session's commands run side by side).")
            {
                Kind = ModuleFlagKind.Integer,
                Min = 1,
                Max = 10_000,
                Default = defaults.BatchesPerSession,
            },
        ];
    }

    private static readonly string DefaultOwner = new StoreSourceOptions().Owner;

    private ICommandEnqueuer OpenEnqueuer(IConfiguration pipeline, Action<EnqueueFailure> onFailure)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        var errors = new List<string>();
        var section = $"Pipeline:{SectionName}";
        var options = Bind(pipeline.GetSection(SectionName), section, errors);
        FindStoreErrors(options, section, errors);
        return new StoreEnqueuer(
            ct => OpenStoreAsync(options, StoreOpening.Enqueue, ct),
            $"{StoreName} store {Where(options)}",
            errors,
            ex => OneLine(options, ex),
            IsTransientOpenError,
            onFailure);
    }

    private async Task<StoreStatus> ReadStatusAsync(IConfiguration pipeline, int maxListed, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        var errors = new List<string>();
        var section = $"Pipeline:{SectionName}";
        var options = Bind(pipeline.GetSection(SectionName), section, errors);
        FindStoreErrors(options, section, errors);
        if (errors.Count > 0)
        {
            throw new ModuleRunException(string.Join(" ", errors));
        }

        IQueuedWorkStore store;
        try
        {
            store = await OpenStoreAsync(options, StoreOpening.Status, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            throw new ModuleRunException(OneLine(options, ex), ex);
        }

        await using (store.ConfigureAwait(false))
        {
            try
            {
                var summary = await store.SummarizeAsync(maxListed, cancellationToken).ConfigureAwait(false);
                return new StoreStatus(Kind, Where(options), summary);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                throw new ModuleRunException(OneLine(options, ex), ex);
            }
        }
    }

    private sealed class StorePlan(StoreModule<TOptions> module, ModuleSelection selection, TOptions options, StoreSourceOptions source, IReadOnlyList<string> errors) : IModulePlan
    {
        public IReadOnlyList<string> Errors => errors;

        public SourceDescription? Source => selection.Source is null ? null : new SourceDescription(
            module.Where(options),
            string.Create(CultureInfo.InvariantCulture, $"({module.StoreName} store, owner {source.Owner}, lease {source.LeaseTimeToLive.TotalSeconds:0.###} s)"),
            source.IdleTimeout is { } idle ? string.Create(CultureInfo.InvariantCulture, $", ending after {idle.TotalSeconds:0.###} s idle once the store holds nothing to do") : string.Empty);

        public string? SinkName => null;

        public IModuleRun Open(ModuleRunContext context) => new StoreModuleRun(
            new StoreModuleRun.Backend(
                module.Kind,
                module.StoreName,
                module.SystemName,
                module.Where(options),
                ct => module.OpenStoreAsync(options, StoreOpening.Worker, ct),
                module.IsTransientOpenError,
                ex => module.OneLine(options, ex)),
            selection,
            source,
            context);
    }
}
