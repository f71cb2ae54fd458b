namespace Pipeline.Tests.Sources;

/// <summary>The embedded source through the pipeline: its delayed redeliveries and its dead letters.</summary>
public sealed class InMemoryCommandSourceTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_command_that_always_fails_is_attempted_MaxAttempts_times_then_dead_lettered_once()
    {
        var seed = Seeds.Or(20261201, output);
        var random = new Random(seed);
        const int runs = 100;
        for (var run = 0; run < runs; run++)
        {
            var count = random.Next(2, 6);
            var attempts = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
            var failing = new ScriptedTool("fail", (command, _) =>
            {
                attempts.AddOrUpdate(command.CommandId, 1, static (_, n) => n + 1);
                return new ValueTask<ToolResult>(ToolResult.Failure("always fails"));
            });
            var source = InMemoryCommandSource.From(Enumerable.Range(0, count).Select(i => TestCommands.Make($"c{i}", "fail")));
            var options = PipelineHarness.FastOptions(AckMode.AckAfterDispatch) with
            {
                MaxAttempts = 3,
                ToolRetries = 0,
                NackBackoff = new Backoff { Base = TimeSpan.FromMilliseconds(1), Max = TimeSpan.FromMilliseconds(2) },
                PullParallelism = random.Next(1, 5),
                Dispatch = new BlockOptions { Parallelism = random.Next(1, 5) },
                ShutdownTimeout = ShortShutdown,
            };
            var pipeline = new CommandPipeline<DeliveryHandle>(source, PipelineHarness.Tools(failing), NullEventSink.Instance, options);
            var context = $"run {run} (seed {seed}, {count} commands, pull parallelism {options.PullParallelism})";

            await Eventually.Returns(pipeline.RunAsync(CancellationToken.None), RunBound, context);

            var deadLetters = source.DeadLetters.GroupBy(d => d.Outcome.Command!.CommandId).ToDictionary(g => g.Key, g => g.Count());
            for (var i = 0; i < count; i++)
            {
                var id = $"c{i}";
                Assert.True(
                    attempts.GetValueOrDefault(id) == 3 && deadLetters.GetValueOrDefault(id) == 1,
                    $"{context}: {id} was attempted {attempts.GetValueOrDefault(id)} times (expected 3) and dead-lettered " +
                    $"{deadLetters.GetValueOrDefault(id)} times (expected 1)");
            }
        }
    }
}
