namespace Pipeline.Tests.Support;

/// <summary>A weighted random choice from a table of cumulative bounds.</summary>
internal static class Weighted
{
    /// <summary>
    /// Draws one number from <paramref name="random"/> and returns the value of the first row whose
    /// bound it is below, or <paramref name="otherwise"/> past the last bound.
    /// </summary>
    public static T Pick<T>(Random random, T otherwise, IReadOnlyList<(double Below, T Value)> table)
    {
        var roll = random.NextDouble();
        foreach (var (below, value) in table)
        {
            if (roll < below)
            {
                return value;
            }
        }

        return otherwise;
    }
}
