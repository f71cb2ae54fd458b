namespace Pipeline.Modules;

/// <summary>
/// What a module adds to a command of the <c>pipeline</c> command line (<c>worker</c>,
/// <c>enqueue</c>), as data: the flag that selects the module, its own flags, each the same
/// setting as a configuration key (so one binding and one check serve the command line and a
/// hosted worker), and a check of the flags given, whose messages name the flags.
/// </summary>
public sealed record ModuleCommandLine
{
    /// <summary>
    /// The flag that selects this module (<c>--nats URL</c>): given on the command line or by its
    /// environment variable, the module's source runs. It is also a setting (its <see cref="ModuleFlag.Key"/>).
    /// </summary>
    public required ModuleFlag Selector { get; init; }

    /// <summary>What the module's source is, as the command's help says it (<c>a NATS JetStream durable consumer</c>).</summary>
    public string Summary { get; init; } = "";

    /// <summary>The source kind the selector chooses (<c>Pipeline:Source</c>), for <c>pipeline worker</c>; null elsewhere.</summary>
    public string? SourceKind { get; init; }

    /// <summary>The module's other flags, in the order help lists them.</summary>
    public IReadOnlyList<ModuleFlag> Flags { get; init; } = [];

    /// <summary>
    /// Keys the selector's flags replace as a whole (<c>Pipeline:Nats:Connection</c>): with the
    /// selector given, a settings file's keys under it are not used, so a connection is all the
    /// flags' or all the file's. Null: each flag replaces only its own key.
    /// </summary>
    public string? ReplacesSection { get; init; }

    /// <summary>
    /// The settings that cannot work, in the flags' terms (<c>--nats-password needs --nats-user</c>);
    /// empty when they can. Null: the module's own checks of its settings suffice.
    /// </summary>
    public Func<ModuleFlagValues, IReadOnlyList<string>>? Check { get; init; }

    /// <summary>Every flag: the selector first.</summary>
    public IEnumerable<ModuleFlag> All => Flags.Prepend(Selector);
}

/// <summary>How a flag's value becomes its setting's value.</summary>
public enum ModuleFlagKind
{
    /// <summary>Text, as given.</summary>
    Text,

    /// <summary>A switch: <see cref="ModuleFlag.WhenOn"/> when given (or given <c>true</c>), <see cref="ModuleFlag.WhenOff"/> when given <c>false</c>.</summary>
    Switch,

    /// <summary>A whole number from <see cref="ModuleFlag.Min"/> to <see cref="ModuleFlag.Max"/>.</summary>
    Integer,

    /// <summary>A whole number of milliseconds, set as a time span.</summary>
    Milliseconds,

    /// <summary>A whole number of seconds, set as a time span.</summary>
    Seconds,

    /// <summary>A comma-separated list, set as the key's items (replacing the whole list).</summary>
    List,
}

/// <summary>One flag of a module: its name, the setting it is, its help, and how its value is read.</summary>
/// <param name="Name">The flag (<c>--stream</c>).</param>
/// <param name="Key">The configuration key it sets (<c>Pipeline:Nats:Source:Stream</c>).</param>
/// <param name="Description">Its help; for the numeric kinds the range and default are added.</param>
public sealed record ModuleFlag(string Name, string Key, string Description)
{
    /// <summary>How the value is read and set. Default <see cref="ModuleFlagKind.Text"/>.</summary>
    public ModuleFlagKind Kind { get; init; }

    /// <summary>The value's name in help (<c>url</c>, <c>file</c>); null for the default.</summary>
    public string? HelpName { get; init; }

    /// <summary>The least value of a numeric kind.</summary>
    public int Min { get; init; }

    /// <summary>The greatest value of a numeric kind.</summary>
    public int Max { get; init; } = int.MaxValue;

    /// <summary>The default a numeric kind shows in help (the module's own default); null for none (not set unless given).</summary>
    public int? Default { get; init; }

    /// <summary>An environment variable read when the flag is not given (a secret kept off the command line), with the module selected; null for none.</summary>
    public string? EnvironmentVariable { get; init; }

    /// <summary>A switch's value when given. Default <c>true</c>.</summary>
    public string WhenOn { get; init; } = "true";

    /// <summary>A switch's value when given <c>false</c>. Default <c>false</c>.</summary>
    public string WhenOff { get; init; } = "false";
}

/// <summary>What a module's <see cref="ModuleCommandLine.Check"/> sees.</summary>
/// <param name="flag">A flag's value as given, else its environment variable's (with the module selected); null when neither.</param>
/// <param name="setting">A key's value after the settings file and the flags are merged; null when unset.</param>
/// <param name="selected">Whether the module's selector was given (on the command line or by its variable).</param>
/// <param name="settingsFile">Whether a settings file (<c>--config</c>) was given, which may hold what the flags leave out.</param>
public sealed class ModuleFlagValues(Func<string, string?> flag, Func<string, string?> setting, bool selected, bool settingsFile)
{
    /// <summary>Whether the module's selector was given.</summary>
    public bool Selected => selected;

    /// <summary>Whether a settings file was given.</summary>
    public bool HasSettingsFile => settingsFile;

    /// <summary>A flag's value as given (or its environment variable's); null when neither.</summary>
    public string? Flag(string name) => flag(name);

    /// <summary>A key's merged value; null when unset.</summary>
    public string? Setting(string key) => setting(key);
}
