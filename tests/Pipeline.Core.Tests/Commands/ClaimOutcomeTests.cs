namespace Pipeline.Tests.Commands;

public sealed class ClaimOutcomeTests
{
    [Fact]
    public void Claimed_carries_its_command()
    {
        var command = TestCommands.Make("a");
        var outcome = ClaimOutcome.Claimed(command);
        Assert.Equal(ClaimOutcomeKind.Claimed, outcome.Kind);
        Assert.Same(command, outcome.Command);
        Assert.Null(outcome.Reason);
    }

    // Ported from the seed: retry_later_outcome_carries_error_message, failed_outcome_carries_error_message.
    [Fact]
    public void RetryLater_and_Failed_carry_their_reason()
    {
        Assert.Equal("overload", ClaimOutcome.RetryLater("overload").Reason);
        Assert.Equal(ClaimOutcomeKind.RetryLater, ClaimOutcome.RetryLater("overload").Kind);
        Assert.Equal("malformed payload", ClaimOutcome.Failed("malformed payload").Reason);
        Assert.Equal(ClaimOutcomeKind.Failed, ClaimOutcome.Failed("malformed payload").Kind);
    }

    [Fact]
    public void AlreadyClaimed_needs_no_command()
    {
        var outcome = ClaimOutcome.AlreadyClaimed();
        Assert.Equal(ClaimOutcomeKind.AlreadyClaimed, outcome.Kind);
        Assert.Null(outcome.Command);
    }

    [Fact]
    public void Claimed_without_a_command_is_refused()
    {
        Assert.Throws<ArgumentNullException>(() => ClaimOutcome.Claimed(null!));
    }
}
