using System.CommandLine;
using Pipeline.Modules;
using Pipeline.Nats.Modules;

namespace Pipeline.Cli.Tests;

/// <summary>A module's flags as options: each given flag becomes its configuration key's value, over a settings file's.</summary>
public sealed class ModuleArgumentsTests
{
    // A second backend, as a store would add itself: its own selector, and a flag it shares by name with NATS.
    private static readonly ModuleCommandLine Store = new()
    {
        Selector = new ModuleFlag("--store", "Pipeline:Store:Path", "The store's file.") { HelpName = "file" },
        SourceKind = "store",
        Flags = [new ModuleFlag("--exit-when-idle", "Pipeline:Store:IdleTimeout", "End when idle.") { Kind = ModuleFlagKind.Seconds, Min = 1, Max = 60 }],
    };

    private static (ParseResult Result, ModuleArguments Arguments) Parse(string[] args, Dictionary<string, string>? environment = null)
    {
        var arguments = new ModuleArguments([NatsCommandLine.Worker, Store], name => environment is not null && environment.TryGetValue(name, out var value) ? value : null);
        var command = new Command("worker");
        arguments.AddTo(command);
        var result = new RootCommand { command }.Parse(["worker", .. args]);
        Assert.Empty(result.Errors);
        return (result, arguments);
    }

    private static Dictionary<string, string?> Apply(ParseResult result, ModuleArguments arguments, Dictionary<string, string?>? file = null)
    {
        var settings = new Dictionary<string, string?>(file ?? [], StringComparer.OrdinalIgnoreCase);
        var line = arguments.Selected(result, out var error);
        Assert.Null(error);
        arguments.Apply(result, line!, settings);
        return settings;
    }

    [Fact]
    public void Each_flag_given_becomes_its_key_in_the_form_the_configuration_binds()
    {
        var (result, arguments) = Parse(["--nats", "nats://h:1", "--stream", "orders", "--subjects", "a.>, b.>", "--ack-wait-ms", "1500", "--exit-when-idle", "2", "--bind-only", "--kv-claimer", "--max-deliver", "-1"]);

        var settings = Apply(result, arguments);

        Assert.Equal(
            new Dictionary<string, string?>
            {
                ["Pipeline:Nats:Connection:Url"] = "nats://h:1",
                ["Pipeline:Nats:Source:Stream"] = "orders",
                ["Pipeline:Nats:Source:Subjects:0"] = "a.>",
                ["Pipeline:Nats:Source:Subjects:1"] = "b.>",
                ["Pipeline:Nats:Source:AckWait"] = "00:00:01.5000000",
                ["Pipeline:Nats:Source:IdleTimeout"] = "00:00:02",
                ["Pipeline:Nats:Source:CreateIfMissing"] = "false",
                ["Pipeline:Claimer"] = "nats-kv",
                ["Pipeline:Nats:Source:MaxDeliver"] = "-1",
            }.OrderBy(p => p.Key),
            settings.OrderBy(p => p.Key));
    }

    [Fact]
    public void A_flag_replaces_the_files_value_and_a_list_replaces_the_whole_list_while_other_keys_stay()
    {
        var (result, arguments) = Parse(["--nats", "nats://h:1", "--subjects", "c.>"]);

        var settings = Apply(result, arguments, new()
        {
            ["Pipeline:Nats:Source:Subjects:0"] = "a.>",
            ["Pipeline:Nats:Source:Subjects:1"] = "b.>",
            ["Pipeline:Nats:Source:Consumer"] = "from-file",
        });

        Assert.Equal("c.>", settings["Pipeline:Nats:Source:Subjects:0"]);
        Assert.False(settings.ContainsKey("Pipeline:Nats:Source:Subjects:1"));
        Assert.Equal("from-file", settings["Pipeline:Nats:Source:Consumer"]);
    }

    [Fact]
    public void With_the_selector_given_the_connection_is_all_the_flags_and_without_it_all_the_files()
    {
        var file = new Dictionary<string, string?> { ["Pipeline:Nats:Connection:Url"] = "nats://file:1", ["Pipeline:Nats:Connection:User"] = "file-user" };
        var environment = new Dictionary<string, string> { [NatsCommandLine.PasswordVariable] = "from-env" };

        var (flagged, arguments) = Parse(["--nats", "nats://flag:1"], environment);
        var settings = Apply(flagged, arguments, file);
        Assert.Equal(("nats://flag:1", null, "from-env"), (settings["Pipeline:Nats:Connection:Url"], settings.GetValueOrDefault("Pipeline:Nats:Connection:User"), settings["Pipeline:Nats:Connection:Password"]));

        // No --nats and no $PIPELINE_NATS_URL: the file's connection, and no variable is read into it.
        var (unflagged, again) = Parse([], environment);
        settings = Apply(unflagged, again, file);
        Assert.Equal(file.OrderBy(p => p.Key), settings.OrderBy(p => p.Key));
    }

    [Fact]
    public void The_selectors_variable_selects_the_module_as_its_flag_does()
    {
        var (result, arguments) = Parse([], new() { [NatsCommandLine.UrlVariable] = "nats://env:1" });

        Assert.True(arguments.IsSelected(result, NatsCommandLine.Worker));
        Assert.Equal("nats://env:1", Apply(result, arguments)["Pipeline:Nats:Connection:Url"]);
    }

    [Fact]
    public void A_flag_two_modules_offer_is_one_option_whose_value_goes_to_the_selected_modules_key()
    {
        var (result, arguments) = Parse(["--store", "s.db", "--exit-when-idle", "5"]);

        var line = arguments.Selected(result, out _);
        var settings = Apply(result, arguments);

        Assert.Same(Store, line);
        Assert.Equal(("s.db", "00:00:05"), (settings["Pipeline:Store:Path"], settings["Pipeline:Store:IdleTimeout"]));
        Assert.False(settings.ContainsKey("Pipeline:Nats:Source:IdleTimeout"));
    }

    [Fact]
    public void Two_selectors_given_is_an_error_naming_both()
    {
        var (result, arguments) = Parse(["--nats", "nats://h:1", "--store", "s.db"]);

        Assert.Null(arguments.Selected(result, out var error));
        Assert.Equal("--nats and --store each choose a source: give one.", error);
    }
}
