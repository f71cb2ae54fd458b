using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Pipeline.Engine;

namespace Pipeline.Hosting.Tests;

/// <summary>The hosted worker's start check (files before anything is opened) and its outcome, read from <see cref="PipelineWorkerState"/> in the test's own process.</summary>
public sealed class PipelineWorkerTests : IDisposable
{
    private static readonly string Samples = Path.Combine(AppContext.BaseDirectory, "samples");
    private readonly string _directory = Directory.CreateTempSubdirectory("pipeline-worker-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    // SetExitCode off: the test's process keeps its own exit code.
    private static async Task<PipelineWorkerState> RunAsync(Func<PipelineWorkerOptions, PipelineWorkerOptions> configure, Func<PipelineWorkerState, IHostApplicationLifetime, Task>? started = null)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddPipelineWorker(o => configure(o with { SetExitCode = false }));
        using var host = builder.Build();
        var state = host.Services.GetRequiredService<PipelineWorkerState>();
        var lifetime = host.Services.GetRequiredService<IHostApplicationLifetime>();
        // As host.Run() runs it: a StopApplication (the worker's own, or the test's) stops the host.
        var run = host.RunAsync();
        if (started is not null)
        {
            await started(state, lifetime);
        }

        await run.WaitAsync(TimeSpan.FromSeconds(30));
        return state;
    }

    /// <summary>A <c>started</c> for <see cref="RunAsync"/>: stops the application once the run's live stats meet <paramref name="condition"/>.</summary>
    private static Func<PipelineWorkerState, IHostApplicationLifetime, Task> StopOnce(Func<PipelineStats, bool> condition) => async (running, lifetime) =>
    {
        var stats = await running.Started.WaitAsync(TimeSpan.FromSeconds(30));
        while (!condition(stats))
        {
            await Task.Delay(10);
        }

        lifetime.StopApplication();
    };

    [Fact]
    public async Task An_events_file_that_is_the_commands_file_is_refused_and_the_commands_file_is_left_as_it_was()
    {
        var commands = Path.Combine(_directory, "commands.jsonl");
        File.Copy(Path.Combine(Samples, "commands.jsonl"), commands);
        var before = await File.ReadAllBytesAsync(commands);

        var state = await RunAsync(o => o with { CommandsFile = commands, Events = Path.Combine(_directory, ".", "commands.jsonl") });

        Assert.Equal((PipelineWorkerOutcome.ConfigurationError, 2), (state.Outcome, state.ExitCode));
        Assert.Contains(state.ConfigurationErrors, e => e.StartsWith("Pipeline:Events '", StringComparison.Ordinal) && e.EndsWith("is the commands file (Pipeline:CommandsFile): writing events would empty it.", StringComparison.Ordinal));
        Assert.Equal(before, await File.ReadAllBytesAsync(commands));
    }

    [Fact]
    public async Task An_events_file_in_a_folder_that_does_not_exist_is_refused_with_the_other_errors()
    {
        var events = Path.Combine(_directory, "no-such-folder", "events.jsonl");

        var state = await RunAsync(o => o with { CommandsFile = Path.Combine(_directory, "absent.jsonl"), Events = events, Engine = o.Engine with { MaxAttempts = 0 } });

        Assert.Equal(PipelineWorkerOutcome.ConfigurationError, state.Outcome);
        Assert.Equal(
            [
                "Pipeline:Engine:MaxAttempts must be from 1 to 1000 (it is 0).",
                $"Pipeline:CommandsFile '{Path.Combine(_directory, "absent.jsonl")}' does not exist.",
                $"Pipeline:Events '{events}' cannot be written: the folder {Path.GetDirectoryName(events)} does not exist.",
            ],
            state.ConfigurationErrors);
        Assert.False(Directory.Exists(Path.GetDirectoryName(events)));
    }

    [Fact]
    public async Task Commands_that_failed_end_the_worker_with_outcome_SomeFailed_and_exit_code_1()
    {
        var state = await RunAsync(o => o with { CommandsFile = Path.Combine(Samples, "with-failures.jsonl") });

        Assert.Equal((PipelineWorkerOutcome.SomeFailed, 1), (state.Outcome, state.ExitCode));
        Assert.Empty(state.ConfigurationErrors);
    }

    [Fact]
    public async Task Every_command_done_is_outcome_Succeeded_and_exit_code_0()
    {
        var state = await RunAsync(o => o with { CommandsFile = Path.Combine(Samples, "commands.jsonl") });

        Assert.Equal((PipelineWorkerOutcome.Succeeded, 0), (state.Outcome, state.ExitCode));
    }

    [Fact]
    public async Task A_stop_from_code_whose_deadline_cuts_a_tool_off_is_outcome_CutOff_with_exit_code_1()
    {
        var commands = Path.Combine(_directory, "slow.jsonl");
        await File.WriteAllTextAsync(commands, """{"command_id": "slow", "execution_id": 1, "step": "s", "tool_kind": "delay", "input": {"ms": 60000}}""" + "\n");

        var state = await RunAsync(
            o => o with { CommandsFile = commands, Engine = o.Engine with { ShutdownTimeout = TimeSpan.FromMilliseconds(100) } },
            // Stopped once the tool runs: acked as it starts (before it, the command would be handed back, cutting nothing off).
            StopOnce(stats => stats.Acked > 0));

        Assert.True(state.DeadlineReached);
        Assert.Equal((PipelineWorkerOutcome.CutOff, 1), (state.Outcome, state.ExitCode));
    }

    /// <summary>
    /// A stop that comes while the commands file is still being read leaves its rest unrun: the
    /// run did not do what it was given, as <c>pipeline run</c> says (exit 128 + the signal, "stopped
    /// before every command was done"), even though every tool in flight finished in time. A hosted
    /// batch job told 0 would take the file for done.
    /// </summary>
    [Fact]
    public async Task A_stop_that_leaves_part_of_the_commands_file_unread_is_outcome_CutOff_not_Succeeded()
    {
        var commands = Path.Combine(_directory, "many.jsonl");
        await File.WriteAllLinesAsync(commands, Enumerable.Range(0, 200).Select(i => $"{{\"command_id\": \"c{i}\", \"execution_id\": 1, \"step\": \"s\", \"tool_kind\": \"delay\", \"input\": {{\"ms\": 100}}}}"));

        var state = await RunAsync(
            o => o with { CommandsFile = commands, Engine = o.Engine with { MaxInFlight = 4, Dispatch = new() { Parallelism = 2 } } },
            StopOnce(stats => stats.Completed > 0));

        // The stop drained what was in flight (no deadline), and most of the file was never read.
        Assert.False(state.DeadlineReached);
        Assert.False(state.SourceExhausted);
        Assert.Equal((PipelineWorkerOutcome.CutOff, 1), (state.Outcome, state.ExitCode));
    }
}
