using Polly;

namespace Pipeline.Engine;

/// <summary>
/// Hands a call that has already been made once to a Polly retry: the first attempt Polly makes
/// replays that call's outcome (a failure is counted, logged and backed off like any other),
/// later attempts call again. The hot path calls the target directly and pays for Polly only
/// when the first call needs a retry. With no first outcome, every attempt calls.
/// </summary>
internal sealed class ReplayFirstOutcome<TTarget, TArg, TResult>(
    TTarget target,
    TArg arg,
    Outcome<TResult>? first,
    Func<TTarget, TArg, CancellationToken, ValueTask<TResult>> call)
{
    private bool _replayed;

    public ValueTask<TResult> NextAsync(CancellationToken cancellationToken)
    {
        // Polly makes its attempts one after another, never two at once.
        if (_replayed || first is not { } outcome)
        {
            return call(target, arg, cancellationToken);
        }

        _replayed = true;
        return outcome.Exception is { } failure
            ? ValueTask.FromException<TResult>(failure)
            : new(outcome.Result!);
    }
}
