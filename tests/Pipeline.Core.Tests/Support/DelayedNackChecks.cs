namespace Pipeline.Tests.Support;

/// <summary>What every source with delayed nacks does with its clock, checked the same way for each.</summary>
internal static class DelayedNackChecks
{
    /// <summary>
    /// Pulls the source's one command and nacks it with a 5 s delay: it is not handed out again
    /// after 4 s of <paramref name="time"/>, and is after 5 s, with one more attempt.
    /// </summary>
    public static async Task ComesBackOnTheClockAsync<TSource, THandle>(TSource source, FakeTimeProvider time)
        where TSource : ICommandSource<THandle>, ISupportsDelayedNack<THandle>
    {
        var first = (await source.NextAsync(CancellationToken.None))!.Value;
        await source.NackAsync(first.Handle, TimeSpan.FromSeconds(5), CancellationToken.None);

        var next = source.NextAsync(CancellationToken.None).AsTask();
        time.Advance(TimeSpan.FromSeconds(4));
        await Task.Yield();
        Assert.False(next.IsCompleted);

        time.Advance(TimeSpan.FromSeconds(1));
        var again = (await next.WaitAsync(TimeSpan.FromSeconds(10)))!.Value;
        Assert.Equal(1, again.Outcome.Command!.Attempts);
    }
}
