using Pipeline.Engine;

namespace Pipeline.Testing;

/// <summary>Running a pipeline in a test until what it checks has happened.</summary>
public static class PipelineRuns
{
    /// <summary>Runs <paramref name="pipeline"/> until <paramref name="done"/> holds, then stops it and waits for it to drain.</summary>
    public static async Task RunUntilAsync<THandle>(CommandPipeline<THandle> pipeline, Func<bool> done, TimeSpan bound, string what, Func<string>? state = null)
    {
        var run = pipeline.RunAsync(CancellationToken.None);
        var deadline = DateTime.UtcNow + bound;
        while (!done())
        {
            if (run.IsCompleted)
            {
                await run;
                Assert.Fail($"{what}: the run ended before the condition held ({state?.Invoke()})");
            }

            if (DateTime.UtcNow >= deadline)
            {
                pipeline.StopNow();
                await run.WaitAsync(TimeSpan.FromSeconds(10));
                Assert.Fail($"{what}: not reached within {bound.TotalSeconds:0.#} s ({state?.Invoke()})");
            }

            await Task.Delay(10);
        }

        pipeline.RequestStop();
        await run.WaitAsync(TimeSpan.FromSeconds(30));
    }
}
