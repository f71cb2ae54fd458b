using Microsoft.Extensions.Time.Testing;
using Pipeline.Sources;

namespace Pipeline.Tests.Sources.Support;

/// <summary>
/// The check both queued sources run for the clock they were given: a command nacked with a
/// 5 s delay is not handed out at 4 s, and is at 5 s with one more attempt. The conformance suite
/// checks the delay on the real clock; this checks that the source's own clock is the one used.
/// </summary>
internal static class DelayedNackClock
{
    /// <summary>Pulls the single command <paramref name="source"/> holds, nacks it for 5 s and advances <paramref name="time"/> across the delay.</summary>
    public static async Task AssertRedeliveredOnItsClockAsync(QueuedCommandSource source, FakeTimeProvider time)
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
