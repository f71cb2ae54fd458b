namespace Pipeline.Engine;

/// <summary>
/// Hands a call that has already failed once to a Polly retry: the first attempt Polly makes
/// replays that failure (so it is counted, logged and backed off like any other), later attempts
/// call again. The hot path calls the target directly and pays for Polly only after a failure.
/// </summary>
internal sealed class ReplayFirstFailure<TTarget, TArg, TResult>(
    TTarget target,
    TArg arg,
    Exception first,
    Func<TTarget, TArg, CancellationToken, ValueTask<TResult>> call)
{
    private Exception? _first = first;

    public ValueTask<TResult> NextAsync(CancellationToken cancellationToken) =>
        Interlocked.Exchange(ref _first, null) is { } failure
            ? ValueTask.FromException<TResult>(failure)
            : call(target, arg, cancellationToken);
}
