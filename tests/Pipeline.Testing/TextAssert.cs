namespace Pipeline.Testing;

/// <summary>Assertions on what a program wrote: its output, a logged message.</summary>
public static class TextAssert
{
    /// <summary>
    /// Asserts that <paramref name="text"/> contains each of <paramref name="expected"/> (ordinal
    /// comparison); a failure names every one missing, not only the first, and shows the text.
    /// </summary>
    public static void ContainsEach(string text, params string[] expected)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(expected);
        var missing = expected.Where(e => !text.Contains(e, StringComparison.Ordinal)).ToList();
        Assert.True(missing.Count == 0, $"not found:\n{string.Join('\n', missing)}\nin:\n{text}");
    }
}
