namespace Pipeline.Engine;

/// <summary>
/// The bounds the options records share with the command line's flags, so a value the command
/// line refuses is refused in configuration too, and the other way round. Every duration ends up
/// in a timer, <c>CancelAfter</c> or <c>Task.Delay</c>, which refuse more than 2^32-2 ms (about
/// 49.7 days) with an exception at the moment it is armed (at a stop, say): a day is far past any
/// real timeout, and what every <c>-ms</c> flag has always accepted.
/// </summary>
public static class SettingLimits
{
    /// <summary>The longest duration a setting takes, in milliseconds: one day.</summary>
    public const int LongestMilliseconds = 86_400_000;

    /// <summary>The most in-process retries a setting takes (<see cref="PipelineOptions.ToolRetries"/>, <see cref="PipelineOptions.EmitRetries"/>).</summary>
    public const int MaxRetries = 10;

    /// <summary>The most attempts <see cref="PipelineOptions.MaxAttempts"/> takes.</summary>
    public const int MaxAttempts = 1000;

    /// <summary>The longest duration a setting takes: one day.</summary>
    public static TimeSpan Longest { get; } = TimeSpan.FromMilliseconds(LongestMilliseconds);

    /// <summary>Whether <paramref name="value"/> is from 0 (or, when <paramref name="positive"/>, more than 0) to <see cref="Longest"/>.</summary>
    public static bool IsDuration(TimeSpan value, bool positive) =>
        (positive ? value > TimeSpan.Zero : value >= TimeSpan.Zero) && value <= Longest;

    /// <summary>The range <see cref="IsDuration"/> accepts, as the rest of a sentence: <c>must be from 0 to 1 day</c>.</summary>
    public static string DurationRange(bool positive) => positive ? "must be more than 0 and at most 1 day" : "must be from 0 to 1 day";
}
