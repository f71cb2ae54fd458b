using System.CommandLine;
using System.Globalization;
using Pipeline.Modules;

namespace Pipeline.Cli;

/// <summary>
/// The modules' flags (<see cref="ModuleCommandLine"/>) as options of one command. A flag two
/// modules both offer (<c>--exit-when-idle</c>) is one option; its value goes to the key of the
/// module that runs. A given flag becomes its configuration key's value, so the command line and
/// a settings file are the same settings, bound and checked by the module's own code.
/// </summary>
internal sealed class ModuleArguments
{
    private readonly IReadOnlyList<ModuleCommandLine> _lines;
    private readonly Dictionary<string, Option> _options = new(StringComparer.Ordinal);
    private readonly Func<string, string?> _environment;

    /// <param name="lines">What each module adds, the default module first.</param>
    /// <param name="environment">Reads an environment variable; the process's own when null (tests pass their own).</param>
    public ModuleArguments(IReadOnlyList<ModuleCommandLine> lines, Func<string, string?>? environment = null)
    {
        _lines = lines;
        _environment = environment ?? Environment.GetEnvironmentVariable;
        foreach (var flag in lines.SelectMany(l => l.All))
        {
            if (!_options.ContainsKey(flag.Name))
            {
                _options[flag.Name] = Create(flag);
            }
        }
    }

    /// <summary>The options, in the order the modules list their flags.</summary>
    public IEnumerable<Option> Options => _options.Values;

    /// <summary>The option of a flag, by its name.</summary>
    public Option this[string name] => _options[name];

    /// <summary>Adds the options to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        foreach (var option in _options.Values)
        {
            command.Options.Add(option);
        }
    }

    /// <summary>
    /// The module whose selector was given (on the command line or by its variable); when none was,
    /// the one whose source kind is <paramref name="sourceKind"/> (a settings file's <c>Pipeline:Source</c>),
    /// else the first module (the embedded default). Null, with an error, when several were given.
    /// </summary>
    public ModuleCommandLine? Selected(ParseResult result, out string? error, string? sourceKind = null)
    {
        var given = _lines.Where(l => IsSelected(result, l)).ToList();
        error = given.Count > 1 ? $"{string.Join(" and ", given.Select(l => l.Selector.Name))} each choose a source: give one." : null;
        return given.Count switch
        {
            0 => _lines.FirstOrDefault(l => sourceKind is not null && string.Equals(l.SourceKind, sourceKind.Trim(), StringComparison.OrdinalIgnoreCase)) ?? _lines.FirstOrDefault(),
            1 => given[0],
            _ => null,
        };
    }

    /// <summary>Whether <paramref name="line"/>'s selector was given.</summary>
    public bool IsSelected(ParseResult result, ModuleCommandLine line) => Raw(result, line.Selector, withEnvironment: true) is { Length: > 0 };

    /// <summary>What a module's check sees: the flags as given (and their variables, with the module selected), and the merged settings.</summary>
    public ModuleFlagValues Values(ParseResult result, ModuleCommandLine line, IReadOnlyDictionary<string, string?> settings, bool settingsFile)
    {
        var selected = IsSelected(result, line);
        var flags = line.All.ToDictionary(f => f.Name, StringComparer.Ordinal);
        return new ModuleFlagValues(
            name => flags.TryGetValue(name, out var flag) ? Raw(result, flag, selected) : null,
            key => settings.TryGetValue(key, out var value) ? value : null,
            selected,
            settingsFile);
    }

    /// <summary>
    /// Writes each flag of <paramref name="line"/> that was given (or set by its variable, with the
    /// module selected) onto its key in <paramref name="settings"/>, replacing what a settings file
    /// had there; with the selector given, the file's keys under <see cref="ModuleCommandLine.ReplacesSection"/> go first.
    /// </summary>
    public void Apply(ParseResult result, ModuleCommandLine line, IDictionary<string, string?> settings)
    {
        var selected = IsSelected(result, line);
        if (selected && line.ReplacesSection is { } section)
        {
            Remove(settings, section);
        }

        foreach (var flag in line.All)
        {
            if (Raw(result, flag, selected) is not { } raw)
            {
                continue;
            }

            Remove(settings, flag.Key);
            switch (flag.Kind)
            {
                case ModuleFlagKind.List:
                    var items = raw.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
                    for (var i = 0; i < items.Length; i++)
                    {
                        settings[$"{flag.Key}:{i.ToString(CultureInfo.InvariantCulture)}"] = items[i];
                    }

                    break;
                case ModuleFlagKind.Switch:
                    settings[flag.Key] = bool.Parse(raw) ? flag.WhenOn : flag.WhenOff;
                    break;
                case ModuleFlagKind.Milliseconds:
                    settings[flag.Key] = TimeSpan.FromMilliseconds(int.Parse(raw, CultureInfo.InvariantCulture)).ToString("c", CultureInfo.InvariantCulture);
                    break;
                case ModuleFlagKind.Seconds:
                    settings[flag.Key] = TimeSpan.FromSeconds(int.Parse(raw, CultureInfo.InvariantCulture)).ToString("c", CultureInfo.InvariantCulture);
                    break;
                default:
                    settings[flag.Key] = raw;
                    break;
            }
        }
    }

    // A key and everything under it (a list's items, a section's keys).
    private static void Remove(IDictionary<string, string?> settings, string key)
    {
        foreach (var existing in settings.Keys.Where(k => k.Equals(key, StringComparison.OrdinalIgnoreCase) || k.StartsWith(key + ":", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            settings.Remove(existing);
        }
    }

    // The flag's value as text when given; else its variable's, when the module is selected (the selector's own always).
    private string? Raw(ParseResult result, ModuleFlag flag, bool withEnvironment)
    {
        var option = _options[flag.Name];
        if (result.GetResult(option) is { Implicit: false })
        {
            var value = option switch
            {
                Option<int> number => result.GetValue(number).ToString(CultureInfo.InvariantCulture),
                Option<bool> on => result.GetValue(on) ? "true" : "false",
                Option<string?> text => result.GetValue(text),
                _ => null,
            };
            // Given empty ('--stream ""') is given: the module's check says what is wrong with it.
            if (value is not null)
            {
                return value;
            }
        }

        return withEnvironment && flag.EnvironmentVariable is { } variable && _environment(variable) is { Length: > 0 } fromEnvironment ? fromEnvironment : null;
    }

    private static Option Create(ModuleFlag flag)
    {
        switch (flag.Kind)
        {
            case ModuleFlagKind.Switch:
                return new Option<bool>(flag.Name) { Description = flag.Description };
            case ModuleFlagKind.Integer or ModuleFlagKind.Milliseconds or ModuleFlagKind.Seconds:
                var number = PipelineCli.Int(flag.Name, flag.Description, flag.Default ?? 0, flag.Min, flag.Max);
                if (flag.Default is null)
                {
                    number.DefaultValueFactory = null;
                }

                return number;
            default:
                return new Option<string?>(flag.Name) { Description = flag.Description, HelpName = flag.HelpName };
        }
    }
}
