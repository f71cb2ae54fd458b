namespace Pipeline.Tests.Engine;

/// <summary>The run's counters (PipelineStats) against what the source saw.</summary>
public sealed class PipelineStatsTests
{
    [Fact]
    public async Task Settle_counters_count_settles_the_source_accepted_and_settle_calls_that_failed_separately()
    {
        var source = new KeepAliveSource { FailAck = h => h % 2 == 1 };
        for (var i = 0; i < 10; i++)
        {
            source.Enqueue(TestCommands.Make($"c{i}"));
        }

        source.Complete();
        var options = PipelineHarness.FastOptions() with { ShutdownTimeout = ShortShutdown };
        var pipeline = new CommandPipeline<long>(source, PipelineHarness.Tools(), new CollectingSink(), options);

        await Eventually.Returns(pipeline.RunAsync(CancellationToken.None), RunBound, "ten noop commands");

        var stats = pipeline.Stats;
        Assert.Equal(5, source.AcceptedAcks); // the scenario: odd handles' acks throw
        Assert.Equal(5, source.FailedSettleCalls);
        Assert.Equal(10, stats.Pulled);
        Assert.True(stats.Acked == source.AcceptedAcks, $"Stats.Acked is {stats.Acked}, but the source accepted {source.AcceptedAcks} acks");
        Assert.Equal(source.FailedSettleCalls, stats.SettleErrors);
        Assert.Equal(stats.Pulled, stats.Acked + stats.Nacked + stats.Terminated + stats.SettleErrors);
    }
}
