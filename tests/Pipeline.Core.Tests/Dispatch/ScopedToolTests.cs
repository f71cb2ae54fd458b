using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Pipeline.Tests.Dispatch;

/// <summary>A tool registered scoped runs each command on a new tool from a new DI scope, disposed when that run ends however it ends.</summary>
public sealed class ScopedToolTests : IAsyncDisposable
{
    private readonly ServiceProvider _services;
    private readonly ToolRegistry _tools;
    private readonly RecordingLoggerProvider _logs = new();

    public ScopedToolTests()
    {
        var services = new ServiceCollection();
        services.AddLogging(logging => logging.AddProvider(_logs));
        services.AddSingleton<Journal>();
        services.AddScoped<Letters>();
        services.AddPipelineTool<ProbeTool>("probe");
        // Scoped services resolved from the root would be an error here, as in a host in Development.
        _services = services.BuildServiceProvider(new ServiceProviderOptions { ValidateScopes = true, ValidateOnBuild = true });
        _tools = _services.GetRequiredService<ToolRegistryFactory>().Create();
    }

    private Journal Journal => _services.GetRequiredService<Journal>();

    private ITool Probe => _tools.TryGet("probe", out var tool) ? tool : throw new InvalidOperationException("probe is not registered");

    public ValueTask DisposeAsync() => _services.DisposeAsync();

    private static Command Mode(string id, string mode) => TestCommands.Make(id, "probe", $$"""{"mode": "{{mode}}"}""");

    [Fact]
    public async Task Each_command_runs_on_a_new_tool_from_a_new_scope_disposed_when_its_run_ends()
    {
        foreach (var id in new[] { "a", "b", "c" })
        {
            var result = await Probe.InvokeAsync(Mode(id, "ok"), default);

            Assert.True(result.IsSuccess, result.Error);
            var run = Journal.Runs.Single(r => r.CommandId == id);
            Assert.False(run.LettersDisposedDuringRun);
            Assert.Contains(run.LettersId, Journal.Disposed); // disposed by the time the run returned
        }

        var runs = Journal.Runs.ToList();
        Assert.Equal(3, runs.Select(r => r.LettersId).Distinct().Count());
        Assert.Equal(3, runs.Select(r => r.Tool).Distinct().Count());
        Assert.Equal([1, 2, 3], Journal.Disposed.Order());
    }

    [Fact]
    public async Task Commands_running_at_once_each_have_a_scope_of_their_own_open_until_their_run_ends()
    {
        var runs = Enumerable.Range(0, 4).Select(i => Probe.InvokeAsync(Mode($"g{i}", "gate"), default).AsTask()).ToList();
        await Eventually.WaitFor(() => Journal.Waiting == 4, TimeSpan.FromSeconds(10), "four runs waiting at once");

        Assert.Equal(4, Journal.Created.Distinct().Count());
        Assert.Empty(Journal.Disposed); // none closed under a run that is still going
        Journal.Gate.SetResult();
        await Task.WhenAll(runs);

        Assert.Equal(4, Journal.Runs.Select(r => r.LettersId).Distinct().Count());
        Assert.All(Journal.Runs, r => Assert.False(r.LettersDisposedDuringRun));
        Assert.Equal(Journal.Created.Order(), Journal.Disposed.Order());
    }

    [Theory]
    [InlineData("fail")]
    [InlineData("throw")]
    [InlineData("not a mode object")]
    public async Task The_scope_is_disposed_when_the_run_fails_throws_or_has_bad_input(string mode)
    {
        var command = mode == "not a mode object" ? TestCommands.Make("x", "probe", """{"mode": 1}""") : Mode("x", mode);
        try
        {
            var result = await Probe.InvokeAsync(command, default);
            Assert.False(result.IsSuccess);
        }
        catch (Exception ex) when (ex is InvalidOperationException or ToolInputException)
        {
            // a throw is the run's end too
        }

        Assert.Single(Journal.Created);
        Assert.Equal(Journal.Created, Journal.Disposed);
    }

    [Fact]
    public async Task The_scope_is_disposed_when_the_run_is_cancelled()
    {
        using var cancel = new CancellationTokenSource();
        var run = Probe.InvokeAsync(Mode("w", "wait"), cancel.Token).AsTask();
        await Eventually.WaitFor(() => !Journal.Created.IsEmpty, TimeSpan.FromSeconds(10), "the run started");
        Assert.Empty(Journal.Disposed);

        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
        Assert.Equal(Journal.Created, Journal.Disposed);
    }

    [Fact]
    public async Task A_tool_timeout_in_the_pipeline_fails_the_command_and_disposes_its_scope()
    {
        var source = new RecordingSource([ClaimOutcome.Claimed(Mode("slow", "wait"))]);
        var sink = new CollectingSink();
        var options = PipelineHarness.FastOptions() with { ToolTimeout = TimeSpan.FromMilliseconds(100), ToolRetries = 0 };
        await new CommandPipeline<long>(source, _tools, sink, options).RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        var failed = sink.For("slow").Single(e => e.EventType == EventTypes.CommandFailed);
        Assert.Contains("probe: timed out after 100 ms", failed.Error, StringComparison.Ordinal);
        Assert.Single(Journal.Created);
        Assert.Equal(Journal.Created, Journal.Disposed);
    }

    [Fact]
    public async Task A_scope_whose_disposal_throws_keeps_the_tools_result_and_logs_the_failure()
    {
        Journal.FailDispose = true;

        var result = await Probe.InvokeAsync(Mode("d", "ok"), default);

        Assert.True(result.IsSuccess, result.Error);
        var logged = Assert.Single(_logs.Entries, e => e.Level == LogLevel.Error);
        Assert.Contains("tool 'probe' for d failed", logged.Message, StringComparison.Ordinal);
        Assert.IsType<InvalidOperationException>(logged.Exception);
    }

    [Fact]
    public async Task A_tool_registered_as_a_singleton_is_held_itself_and_shared_by_every_command()
    {
        var services = new ServiceCollection();
        services.AddPipelineTool<CountingTool>("count", ServiceLifetime.Singleton);
        await using var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateScopes = true });
        var tools = provider.GetRequiredService<ToolRegistryFactory>().Create();

        Assert.True(tools.TryGet("count", out var tool));
        var counting = Assert.IsType<CountingTool>(tool); // no adapter, no scope: the hot path of a tool without one
        await tool.InvokeAsync(TestCommands.Make("1", "count"), default);
        await tool.InvokeAsync(TestCommands.Make("2", "count"), default);
        Assert.Equal(2, counting.Runs);
        Assert.True(provider.GetRequiredService<ToolRegistryFactory>().Create().TryGet("count", out var again));
        Assert.Same(tool, again);
    }

    private sealed class CountingTool : ITool
    {
        private int _runs;

        public string Kind => "count";

        public int Runs => _runs;

        public ValueTask<ToolResult> InvokeAsync(Command command, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _runs);
            return new(ToolResult.Success());
        }
    }

    private sealed class RecordingLoggerProvider : ILoggerProvider
    {
        public ConcurrentQueue<(LogLevel Level, string Message, Exception? Exception)> Entries { get; } = new();

        public ILogger CreateLogger(string categoryName) => new Logger(this);

        public void Dispose()
        {
        }

        private sealed class Logger(RecordingLoggerProvider provider) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                provider.Entries.Enqueue((logLevel, formatter(state, exception), exception));
        }
    }
}
