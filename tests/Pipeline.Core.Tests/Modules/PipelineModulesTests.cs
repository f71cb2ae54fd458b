using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using Pipeline.Modules;
using Pipeline.Testing.Modules;

namespace Pipeline.Tests.Modules;

/// <summary>How a run's kinds are found among the registered modules, and how their settings are checked.</summary>
public sealed class PipelineModulesTests
{
    private static readonly PipelineModules Modules = new([CoreModule.Instance, new InMemoryModule([])]);

    // The file module checks that its commands file can be read; planning never reads its lines, so any readable file will do.
    private static readonly string Commands = typeof(PipelineModulesTests).Assembly.Location;

    private static PipelineSetup Prepare(string? source, string? claimer = null, string? events = null, params (string Key, string? Value)[] settings)
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value)))
            .Build();
        return Modules.Prepare(new PipelineChoice(source, claimer, events), new ModuleContext(configuration, new PipelineOptions()));
    }

    [Fact]
    public void An_unknown_source_kind_is_an_error_listing_the_known_kinds_backends_first()
    {
        var error = Assert.Single(Prepare("kafka").Errors);
        Assert.Equal("Pipeline:Source 'kafka' is not a known source kind; known: memory, file.", error);
    }

    [Fact]
    public void An_unknown_claimer_kind_is_an_error_listing_the_known_kinds_and_none()
    {
        var error = Assert.Single(Prepare("file", claimer: "redis", settings: ("CommandsFile", Commands)).Errors);
        Assert.Equal("Pipeline:Claimer 'redis' is not a known claimer kind; known: memory-once, none.", error);
    }

    [Fact]
    public void Empty_events_is_an_error_listing_the_sink_kinds()
    {
        var error = Assert.Single(Prepare("file", events: "", settings: ("CommandsFile", Commands)).Errors);
        Assert.Equal("Pipeline:Events must be null (none), 'memory', '-' or a file path, not ''.", error);
    }

    [Theory]
    [InlineData("events.jsonl", "events.jsonl")]
    [InlineData("file", "file")]
    [InlineData("-", "stdout")]
    [InlineData("memory", "memory:m")]
    public void Events_naming_a_kind_go_to_its_module_and_any_other_value_is_a_file_path(string events, string name)
    {
        var setup = Prepare("file", events: events, settings: [("CommandsFile", Commands), ("Memory:Name", "m")]);

        Assert.Empty(setup.Errors);
        Assert.Equal(name, setup.EventsName);
    }

    [Fact]
    public void Each_module_in_use_checks_its_own_section_and_every_error_names_its_key()
    {
        var errors = Prepare("file", events: "memory").Errors;

        Assert.Equal(
            [
                "Pipeline:Memory:Name is required with the memory module.",
                "Pipeline:CommandsFile is required with Pipeline:Source 'file' (a JSON Lines file of commands).",
            ],
            errors);
    }

    [Fact]
    public void A_module_not_in_use_is_not_checked()
    {
        var setup = Prepare("file", settings: ("CommandsFile", Commands));

        Assert.Empty(setup.Errors);
        Assert.Equal(new SourceDescription(Commands), setup.Source);
        Assert.Null(setup.EventsName);
    }

    [Theory]
    [InlineData("memory-once", true)]
    [InlineData("none", false)]
    [InlineData(null, false)]
    public async Task A_claimer_kind_opens_its_module_s_claimer_and_none_means_no_claimer(string? claimer, bool expected)
    {
        var setup = Prepare("file", claimer: claimer, settings: [("CommandsFile", Commands), ("Memory:Name", "m")]);
        Assert.Empty(setup.Errors);

        await using var run = await setup.OpenAsync(new ModuleRunContext(NullLoggerFactory.Instance, NullLogger.Instance));

        Assert.Equal(expected, run.HasClaimer);
        Assert.Equal(expected, run.CreateClaimer() is not null);
    }

    [Fact]
    public async Task An_opened_run_closes_every_module_it_opened()
    {
        var memory = new InMemoryModule([Command.Parse("""{"command_id":"a","execution_id":1,"step":"s","tool_kind":"noop","input":{}}""")]);
        var modules = new PipelineModules([CoreModule.Instance, memory]);
        var configuration = new ConfigurationBuilder().AddInMemoryCollection([new("Memory:Name", "m"), new("CommandsFile", Commands)]).Build();
        var setup = modules.Prepare(new PipelineChoice("file", null, "memory"), new ModuleContext(configuration, new PipelineOptions()));

        var run = await setup.OpenAsync(new ModuleRunContext(NullLoggerFactory.Instance, NullLogger.Instance));
        Assert.False(memory.Closed);
        await run.DisposeAsync();

        Assert.True(memory.Closed);
    }
}
