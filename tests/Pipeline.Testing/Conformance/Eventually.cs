namespace Pipeline.Testing.Conformance;

/// <summary>Bounded waits for a condition: one that never comes fails naming what was awaited and the state last seen.</summary>
public static class Eventually
{
    /// <summary>Polls <paramref name="condition"/> until true; fails naming <paramref name="what"/> after <paramref name="bound"/>.</summary>
    public static async Task WaitForAsync(Func<ValueTask<bool>> condition, TimeSpan bound, string what, Func<string>? state = null)
    {
        ArgumentNullException.ThrowIfNull(condition);
        var deadline = DateTime.UtcNow + bound;
        while (!await condition())
        {
            if (DateTime.UtcNow >= deadline)
            {
                Assert.Fail($"{what}: not reached within {bound.TotalSeconds:0.#} s{(state is null ? "" : $" ({state()})")}");
            }

            await Task.Delay(20);
        }
    }

    /// <summary>Polls <paramref name="condition"/> until true; fails naming <paramref name="what"/> after <paramref name="bound"/>.</summary>
    public static Task WaitForAsync(Func<bool> condition, TimeSpan bound, string what, Func<string>? state = null)
    {
        ArgumentNullException.ThrowIfNull(condition);
        return WaitForAsync(() => new ValueTask<bool>(condition()), bound, what, state);
    }
}
