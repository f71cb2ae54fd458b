namespace Pipeline.Testing;

/// <summary>Bounded waits: a condition that never comes, or a run that never returns, fails cleanly.</summary>
public static class Eventually
{
    /// <summary>How long <see cref="WaitFor(Func{bool})"/> waits when the test names no bound.</summary>
    public static readonly TimeSpan DefaultBound = TimeSpan.FromSeconds(20);

    /// <summary>Polls <paramref name="condition"/> until true; fails after <see cref="DefaultBound"/>.</summary>
    public static Task WaitFor(Func<bool> condition) => WaitFor(condition, DefaultBound, "condition");

    /// <summary>Polls <paramref name="condition"/> until true; fails naming <paramref name="what"/> after <paramref name="bound"/>.</summary>
    public static Task WaitFor(Func<bool> condition, TimeSpan bound, string what, Func<string>? state = null) =>
        WaitForAsync(() => Task.FromResult(condition()), bound, what, state, TimeSpan.FromMilliseconds(2));

    /// <summary>
    /// Polls an asynchronous <paramref name="condition"/> (a server's state) every <paramref name="poll"/>
    /// (default 20 ms) until true; fails naming <paramref name="what"/> after <paramref name="bound"/>.
    /// </summary>
    public static async Task WaitForAsync(Func<Task<bool>> condition, TimeSpan bound, string what, Func<string>? state = null, TimeSpan? poll = null)
    {
        var deadline = DateTime.UtcNow + bound;
        while (!await condition())
        {
            if (DateTime.UtcNow >= deadline)
            {
                Assert.Fail($"{what}: not reached within {bound.TotalSeconds:0.#} s{(state is null ? "" : $" ({state()})")}");
            }

            await Task.Delay(poll ?? TimeSpan.FromMilliseconds(20));
        }
    }

    /// <summary>Waits until <paramref name="value"/> has not changed for <paramref name="quiet"/> (the system settled), for at most <paramref name="bound"/>.</summary>
    public static async Task Quiet(Func<int> value, TimeSpan quiet, TimeSpan bound, string what)
    {
        var deadline = DateTime.UtcNow + bound;
        var last = value();
        var since = DateTime.UtcNow;
        while (DateTime.UtcNow - since < quiet)
        {
            if (DateTime.UtcNow >= deadline)
            {
                Assert.Fail($"{what}: still changing after {bound.TotalSeconds:0.#} s (now {last})");
            }

            await Task.Delay(5);
            var now = value();
            if (now != last)
            {
                last = now;
                since = DateTime.UtcNow;
            }
        }
    }

    /// <summary>Awaits <paramref name="run"/> for at most <paramref name="bound"/>; a hang becomes a <see cref="TimeoutException"/> saying what was going on.</summary>
    public static async Task Returns(Task run, TimeSpan bound, string what, Func<string>? state = null)
    {
        try
        {
            await run.WaitAsync(bound);
        }
        catch (TimeoutException ex)
        {
            throw new TimeoutException($"{what}: RunAsync had not returned {bound.TotalSeconds:0.#} s later{(state is null ? "" : $" ({state()})")}", ex);
        }
    }
}
