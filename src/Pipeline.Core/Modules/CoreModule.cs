using Pipeline.Claiming;
using Pipeline.Events;
using Pipeline.Sources;

namespace Pipeline.Modules;

/// <summary>
/// The built-in module, registered by every host: the JSON Lines file source (<c>Pipeline:Source
/// file</c>, reading <c>Pipeline:CommandsFile</c>), and events to stdout (<c>Pipeline:Events -</c>)
/// or to a JSON Lines file (any other value of <c>Pipeline:Events</c>: its path).
/// </summary>
public sealed class CoreModule : IPipelineModule
{
    /// <summary>The JSON Lines file source kind, and the sink kind any <c>Pipeline:Events</c> value not naming a kind resolves to.</summary>
    public const string FileKind = "file";

    /// <summary>The stdout sink kind.</summary>
    public const string StandardOutputKind = "-";

    private CoreModule()
    {
    }

    /// <summary>The module.</summary>
    public static CoreModule Instance { get; } = new();

    /// <inheritdoc/>
    public string Name => FileKind;

    /// <inheritdoc/>
    public IReadOnlyList<string> SourceKinds { get; } = [FileKind];

    /// <inheritdoc/>
    public IReadOnlyList<string> ClaimerKinds { get; } = [];

    /// <inheritdoc/>
    public IReadOnlyList<string> SinkKinds { get; } = [StandardOutputKind, FileKind];

    /// <inheritdoc/>
    public ModuleCommandLine? WorkerCommandLine => null;

    /// <inheritdoc/>
    public ModuleEnqueue? Enqueue => null;

    /// <inheritdoc/>
    public string? ImpliedClaimer(ModuleContext context) => null;

    /// <inheritdoc/>
    public IModulePlan Plan(ModuleSelection selection, ModuleContext context)
    {
        ArgumentNullException.ThrowIfNull(selection);
        ArgumentNullException.ThrowIfNull(context);
        var errors = new List<string>();
        string? commands = null;
        if (selection.Source is not null)
        {
            commands = context.Configuration["CommandsFile"];
            if (string.IsNullOrWhiteSpace(commands))
            {
                errors.Add($"{context.Key("CommandsFile")} is required with {context.Key("Source")} '{FileKind}' (a JSON Lines file of commands).");
            }
            else if (CommandsFileProblem(commands) is { } problem)
            {
                errors.Add($"{context.Key("CommandsFile")} '{commands}' {problem}.");
            }
        }

        if (selection.Sink == FileKind && selection.SinkTarget is { } events)
        {
            // Checked before the run opens the sink, which empties an existing file: a setting that
            // cannot work must leave the last run's events as they were.
            if (commands is not null && SameFile(commands, events))
            {
                errors.Add($"{context.Key("Events")} '{events}' is the commands file ({context.Key("CommandsFile")}): writing events would empty it.");
            }
            else if (EventsFileProblem(events) is { } problem)
            {
                errors.Add($"{context.Key("Events")} '{events}' {problem}.");
            }
        }

        return new Planned(selection, commands, errors);
    }

    // What keeps the commands file from being read, as the rest of a sentence; null when it can be.
    private static string? CommandsFileProblem(string path)
    {
        try
        {
            if (Directory.Exists(path))
            {
                return "is a folder, not a file";
            }

            using var probe = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 1);
            return null;
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return "does not exist";
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            return $"cannot be read: {ex.Message}";
        }
    }

    // What keeps the events file from being written, without creating, emptying or changing it; null when it can be.
    private static string? EventsFileProblem(string path)
    {
        try
        {
            var full = Path.GetFullPath(path);
            if (Directory.Exists(full))
            {
                return "is a folder, not a file";
            }

            if (File.Exists(full))
            {
                // Opened for writing and closed: nothing is written, the file stays as it was.
                using var existing = new FileStream(full, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, bufferSize: 1);
                return null;
            }

            var folder = Path.GetDirectoryName(full);
            if (folder is null || !Directory.Exists(folder))
            {
                return $"cannot be written: the folder {folder} does not exist";
            }

            // A file of our own in the folder, gone when closed: the events file is not created yet.
            using var probe = new FileStream(Path.Combine(folder, $".pipeline-probe-{Guid.NewGuid():N}"), FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1, FileOptions.DeleteOnClose);
            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            return $"cannot be written: {ex.Message}";
        }
    }

    // Whether two paths name one file: the same full path, or (both existing) the same file through a link.
    private static bool SameFile(string a, string b)
    {
        try
        {
            static string Resolve(string path)
            {
                var full = Path.GetFullPath(path);
                return File.Exists(full) && new FileInfo(full).ResolveLinkTarget(returnFinalTarget: true) is { } target ? target.FullName : full;
            }

            return string.Equals(Resolve(a), Resolve(b), OperatingSystem.IsLinux() ? StringComparison.Ordinal : StringComparison.OrdinalIgnoreCase);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            return false;
        }
    }

    private sealed class Planned(ModuleSelection selection, string? commands, IReadOnlyList<string> errors) : IModulePlan
    {
        public IReadOnlyList<string> Errors => errors;

        public SourceDescription? Source => commands is null ? null : new SourceDescription(commands);

        public string? SinkName => selection.Sink switch
        {
            null => null,
            StandardOutputKind => "stdout",
            _ => selection.SinkTarget,
        };

        public IModuleRun Open(ModuleRunContext context) => new Run(selection, commands);
    }

    private sealed class Run(ModuleSelection selection, string? commands) : IModuleRun
    {
        private readonly RunResources _resources = new();

        public IEventSink CreateSink() => selection.Sink switch
        {
            StandardOutputKind => _resources.Add(JsonLinesEventSink.StandardOutput()),
            FileKind => _resources.Add(JsonLinesEventSink.CreateFile(selection.SinkTarget!)),
            _ => throw new InvalidOperationException($"The {FileKind} module provides no event sink to this run."),
        };

        public IClaimer CreateClaimer() => throw new InvalidOperationException($"The {FileKind} module offers no claimer.");

        public async Task<WorkLeft?> RunSourceAsync(IPipelineRunner runner, CancellationToken stoppingToken)
        {
            ArgumentNullException.ThrowIfNull(runner);
            var source = _resources.Add(JsonLinesFileSource.Open(commands ?? throw new InvalidOperationException($"The {FileKind} module provides no source to this run.")));
            await runner.RunAsync(source, () => source.Exhausted).ConfigureAwait(false);
            return null; // a file holds nothing back
        }

        public ValueTask DisposeAsync() => _resources.DisposeAsync();
    }
}
