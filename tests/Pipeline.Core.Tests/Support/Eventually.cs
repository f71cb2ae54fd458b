namespace Pipeline.Tests.Support;

/// <summary>Bounded waits: a condition that never comes, or a run that never returns, fails cleanly.</summary>
internal static class Eventually
{
    /// <summary>Polls <paramref name="condition"/> until true; fails naming <paramref name="what"/> after <paramref name="bound"/>.</summary>
    public static async Task WaitFor(Func<bool> condition, TimeSpan bound, string what, Func<string>? state = null)
    {
        var deadline = DateTime.UtcNow + bound;
        while (!condition())
        {
            if (DateTime.UtcNow >= deadline)
            {
                Assert.Fail($"{what}: not reached within {bound.TotalSeconds:0.#} s{(state is null ? "" : $" ({state()})")}");
            }

            await Task.Delay(2);
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
