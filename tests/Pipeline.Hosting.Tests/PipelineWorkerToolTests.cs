using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Pipeline.Dispatch;

namespace Pipeline.Hosting.Tests;

/// <summary>
/// The hosted worker runs the tools registered in DI (<c>AddPipelineTool</c>) beside the built-in
/// ones: the README's <c>UpperTool</c> (samples/HostedTool), with a scoped dependency and a typed
/// input, on the file source, its events in a JSON Lines file.
/// </summary>
public sealed class PipelineWorkerToolTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("pipeline-tools-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static string Command(string id, string toolKind, string input) =>
        $$"""{"command_id": "{{id}}", "execution_id": 7, "step": "s", "tool_kind": "{{toolKind}}", "input": {{input}}}""";

    private static HostApplicationBuilder Builder(string commandsFile, string eventsFile, Dictionary<string, string?>? settings = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = [] });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Pipeline:Source"] = "file",
            ["Pipeline:CommandsFile"] = commandsFile,
            ["Pipeline:Events"] = eventsFile,
            // After dispatch, so a failure that may be retried would be nacked and run again: bad input must not be.
            ["Pipeline:Engine:AckMode"] = "AckAfterDispatch",
        });
        if (settings is not null)
        {
            builder.Configuration.AddInMemoryCollection(settings);
        }

        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        // A scoped service resolved outside a scope is an error, as in Development.
        builder.ConfigureContainer(new DefaultServiceProviderFactory(new ServiceProviderOptions { ValidateScopes = true, ValidateOnBuild = true }));
        return builder;
    }

    private async Task<(List<JsonElement> Events, Journal Journal)> RunAsync(IEnumerable<string> commands, Dictionary<string, string?>? settings = null)
    {
        var commandsFile = Path.Combine(_directory, "commands.jsonl");
        var eventsFile = Path.Combine(_directory, "events.jsonl");
        await File.WriteAllLinesAsync(commandsFile, commands);
        var builder = Builder(commandsFile, eventsFile, settings);
        builder.AddPipelineWorker();
        builder.Services.AddSingleton<Journal>();
        builder.Services.AddScoped<Letters, RecordingLetters>();
        builder.Services.AddPipelineTool<UpperTool>("upper");
        using var host = builder.Build();
        var state = host.Services.GetRequiredService<PipelineWorkerState>();
        var journal = host.Services.GetRequiredService<Journal>();

        await host.RunAsync().WaitAsync(TimeSpan.FromSeconds(60)); // ends by itself: the file is read (and disposes the host)

        Assert.Null(state.Fault);
        var events = (await File.ReadAllLinesAsync(eventsFile)).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();
        return (events, journal);
    }

    private static IEnumerable<JsonElement> OfType(List<JsonElement> events, string type) =>
        events.Where(e => e.GetProperty("event_type").GetString() == type);

    private static string ErrorOf(List<JsonElement> events, string commandId) =>
        OfType(events, "command.failed").Single(e => e.GetProperty("command_id").GetString() == commandId).GetProperty("error").GetString()!;

    [Fact]
    public async Task A_tool_in_DI_runs_each_command_once_on_a_scope_of_its_own_that_is_disposed_sharing_singletons()
    {
        const int n = 40;
        var texts = Enumerable.Range(0, n).Select(i => $"text {i}").ToList();

        var (events, journal) = await RunAsync(texts.Select((t, i) => Command($"c{i}", "upper", $$"""{"text": "{{t}}"}""")));

        // Every command ran exactly once: one tool run and one command.completed each.
        Assert.Equal(texts.Order(), journal.Runs.Select(r => r.Text).Order());
        var completed = OfType(events, "command.completed").ToList();
        Assert.Equal(n, completed.Count);
        Assert.Equal(Enumerable.Range(0, n).Select(i => $"c{i}").Order(), completed.Select(e => e.GetProperty("command_id").GetString()).Order());
        Assert.Equal("TEXT 3", completed.Single(e => e.GetProperty("command_id").GetString() == "c3").GetProperty("result").GetProperty("upper").GetString());
        // Each run had its own scope (its own scoped Letters), and every scope was disposed.
        Assert.Equal(n, journal.Runs.Select(r => r.LettersId).Distinct().Count());
        Assert.Equal(journal.Created.Order(), journal.Disposed.Order());
        Assert.Equal(n, journal.Created.Count);
        // The singleton was one for all.
        Assert.Equal([journal.Id], journal.Runs.Select(r => r.JournalId).Distinct());
    }

    [Fact]
    public async Task Bad_input_is_a_command_failed_that_is_not_retried_and_names_the_tool_and_the_member()
    {
        var (events, journal) = await RunAsync(
        [
            Command("wrong-type", "upper", """{"text": 42}"""),
            Command("missing", "upper", """{"txt": "a"}"""),
            Command("null", "upper", """{"text": null}"""),
            Command("good", "upper", """{"text": "fine"}"""),
        ]);

        Assert.StartsWith("upper: input.text: Cannot get the value of a token type 'Number' as a string.", ErrorOf(events, "wrong-type"), StringComparison.Ordinal);
        Assert.StartsWith("upper: input: ", ErrorOf(events, "missing"), StringComparison.Ordinal);
        Assert.Contains("missing required properties including: 'text'", ErrorOf(events, "missing"), StringComparison.Ordinal);
        Assert.StartsWith("upper: input.text: ", ErrorOf(events, "null"), StringComparison.Ordinal);
        Assert.Contains("doesn't allow null values", ErrorOf(events, "null"), StringComparison.Ordinal);
        foreach (var id in new[] { "wrong-type", "missing", "null" })
        {
            Assert.EndsWith("(not retryable; giving up)", ErrorOf(events, id), StringComparison.Ordinal);
        }

        Assert.Equal(3, OfType(events, "command.failed").Count()); // none came back for another attempt
        Assert.Equal(["fine"], journal.Runs.Select(r => r.Text)); // the tool's own code ran for the good one only
        Assert.Equal(journal.Created.Order(), journal.Disposed.Order());
    }

    [Fact]
    public async Task An_unknown_tool_kind_still_fails_for_good_naming_the_registered_tools()
    {
        var (events, _) = await RunAsync([Command("x", "nope", "{}")]);

        Assert.Equal("unknown tool_kind 'nope'; registered tools: delay, echo, http, noop, upper. (not retryable; giving up)", ErrorOf(events, "x"));
    }

    [Fact]
    public async Task The_shell_tool_is_there_only_when_the_configuration_enables_it()
    {
        var shell = Command("sh", "shell", """{"command": "true"}""");

        var (off, _) = await RunAsync([shell]);
        Assert.StartsWith("unknown tool_kind 'shell'", ErrorOf(off, "sh"), StringComparison.Ordinal);

        var (on, _) = await RunAsync([shell], new() { ["Pipeline:Tools:EnableShell"] = "true" });
        Assert.Single(OfType(on, "command.completed"));
    }

    [Fact]
    public void Two_tools_of_one_kind_fail_at_start_naming_the_kind_and_both_types()
    {
        var builder = Builder("unused.jsonl", "unused-events.jsonl");
        builder.AddPipelineWorker();
        builder.Services.AddPipelineTool<UpperTool>("upper");

        var twice = Assert.Throws<InvalidOperationException>(() => builder.Services.AddPipelineTool<ShoutTool>("upper"));
        var builtIn = Assert.Throws<InvalidOperationException>(() => builder.Services.AddPipelineTool<ShoutTool>("echo"));

        Assert.Equal($"tool_kind 'upper' is registered twice, for UpperTool and for {typeof(ShoutTool).FullName}: register one tool per kind.", twice.Message);
        Assert.Equal($"tool_kind 'echo' is registered twice, for Pipeline.Tools.EchoTool and for {typeof(ShoutTool).FullName}: register one tool per kind.", builtIn.Message);
    }

    [Fact]
    public async Task The_README_shows_the_sample_that_is_built_and_tested_here()
    {
        var readme = await File.ReadAllTextAsync(Path.Combine(AppContext.BaseDirectory, "readme", "README.md"));
        var sample = await File.ReadAllTextAsync(Path.Combine(AppContext.BaseDirectory, "readme", "HostedTool.Program.cs.txt"));
        var section = readme[readme.IndexOf("## Your own tool", StringComparison.Ordinal)..];
        var start = section.IndexOf("```csharp\n", StringComparison.Ordinal) + "```csharp\n".Length;
        var snippet = section[start..section.IndexOf("```", start, StringComparison.Ordinal)];

        Assert.Equal(sample, snippet);
        Assert.True(sample.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length < 20, "the sample is under 20 lines");
    }

    /// <summary>What the runs saw: the text each ran on, the scoped Letters it got, the singleton it got; each Letters made and disposed.</summary>
    private sealed class Journal
    {
        private int _nextId;

        public Guid Id { get; } = Guid.NewGuid();

        public ConcurrentQueue<(string Text, int LettersId, Guid JournalId)> Runs { get; } = new();

        public ConcurrentQueue<int> Created { get; } = new();

        public ConcurrentQueue<int> Disposed { get; } = new();

        public int NextId() => Interlocked.Increment(ref _nextId);
    }

    /// <summary>The sample's scoped Letters, recording: a DbContext-like service, disposed asynchronously with its scope.</summary>
    private sealed class RecordingLetters : Letters, IAsyncDisposable
    {
        private readonly Journal _journal;

        public RecordingLetters(Journal journal)
        {
            _journal = journal;
            Id = journal.NextId();
            journal.Created.Enqueue(Id);
        }

        public int Id { get; }

        public override string Upper(string text)
        {
            _journal.Runs.Enqueue((text, Id, _journal.Id));
            return base.Upper(text);
        }

        public async ValueTask DisposeAsync()
        {
            await Task.Yield();
            _journal.Disposed.Enqueue(Id);
        }
    }

    private sealed class ShoutTool : PipelineTool<UpperInput>
    {
        public override ValueTask<ToolResult> InvokeAsync(UpperInput input, ToolContext context, CancellationToken cancellationToken) =>
            new(ToolResult.Success());
    }
}
