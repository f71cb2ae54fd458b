namespace Pipeline.Tests.Support;

/// <summary>
/// A claimer whose behaviour the test supplies; counts its calls. With <see cref="Hang"/>, claims
/// of the matching commands never return and ignore their token (until <see cref="ReleaseHangs"/>).
/// </summary>
internal sealed class ScriptedClaimer(Func<ClaimOutcome, CancellationToken, ValueTask<ClaimOutcome>>? claim = null) : IClaimer
{
    private readonly TaskCompletionSource _never = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _calls;

    /// <summary>Claims of these commands never return and ignore their token.</summary>
    public Func<Command?, bool>? Hang { get; init; }

    /// <summary>Claims begun.</summary>
    public int Calls => Volatile.Read(ref _calls);

    /// <summary>Lets hung claims return (cleanup after a failed test).</summary>
    public void ReleaseHangs() => _never.TrySetResult();

    public async ValueTask<ClaimOutcome> ClaimAsync(ClaimContext context, CancellationToken cancellationToken)
    {
        var pulled = context.Pulled;
        Interlocked.Increment(ref _calls);
        if (Hang?.Invoke(pulled.Command) == true)
        {
            await _never.Task.ConfigureAwait(false);
        }

        return claim is null ? pulled : await claim(pulled, cancellationToken).ConfigureAwait(false);
    }
}
