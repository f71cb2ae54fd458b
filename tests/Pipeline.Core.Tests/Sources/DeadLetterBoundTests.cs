namespace Pipeline.Tests.Sources;

/// <summary>The embedded file source's dead letters stay bounded however many lines are malformed.</summary>
public sealed class DeadLetterBoundTests
{
    [Fact]
    public async Task Dead_letters_of_a_long_run_of_malformed_lines_stay_bounded()
    {
        // Every malformed (or over-long) line is a claim.failed the engine terminates by default:
        // kept whole for the run, the dead letters grow with the input however hostile it is.
        const int lines = 20_000;
        var text = string.Concat(Enumerable.Repeat("not json\n", lines));
        await using var source = JsonLinesFileSource.Open(new MemoryStream(Encoding.UTF8.GetBytes(text)), "bad");

        while (await source.NextAsync(CancellationToken.None) is { } pulled)
        {
            await source.TerminateAsync(pulled.Handle, pulled.Outcome.Reason ?? "poison", CancellationToken.None);
        }

        Assert.Equal(lines, source.Terminated);
        Assert.InRange(source.DeadLetters.Count, 1, QueuedCommandSource.MaxDeadLetters);
        Assert.StartsWith($"bad line {lines}: malformed command", source.DeadLetters.Last().Reason, StringComparison.Ordinal);
    }
}
