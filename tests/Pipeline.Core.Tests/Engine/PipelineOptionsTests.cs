namespace Pipeline.Tests.Engine;

/// <summary>
/// <see cref="PipelineOptions.FindErrors"/> bounds every duration above as the command line's
/// <c>-ms</c> flags do (one day): a timer refuses more than about 49.7 days, and refused it at a
/// stop, long after a check that let it through; the retry counts take the flags' ranges too.
/// </summary>
public sealed class PipelineOptionsTests
{
    private static readonly TimeSpan OneDay = TimeSpan.FromDays(1);
    private static readonly TimeSpan FiftyDays = TimeSpan.FromDays(50);

    public static TheoryData<string, bool> Durations => new()
    {
        { nameof(PipelineOptions.ShutdownTimeout), false },
        { nameof(PipelineOptions.SettleTimeout), true },
        { nameof(PipelineOptions.ToolTimeout), true },
        { nameof(PipelineOptions.ToolRetryDelay), false },
    };

    private static PipelineOptions WithDuration(string key, TimeSpan value) => key switch
    {
        nameof(PipelineOptions.ShutdownTimeout) => new() { ShutdownTimeout = value },
        nameof(PipelineOptions.SettleTimeout) => new() { SettleTimeout = value },
        nameof(PipelineOptions.ToolTimeout) => new() { ToolTimeout = value },
        nameof(PipelineOptions.ToolRetryDelay) => new() { ToolRetryDelay = value },
        _ => throw new ArgumentOutOfRangeException(nameof(key), key, null),
    };

    [Theory]
    [MemberData(nameof(Durations))]
    public void A_duration_of_one_day_is_accepted_and_one_past_it_is_named_with_the_range(string key, bool positive)
    {
        Assert.Empty(WithDuration(key, OneDay).FindErrors());

        foreach (var tooLong in new[] { OneDay + TimeSpan.FromMilliseconds(1), FiftyDays, TimeSpan.MaxValue })
        {
            var error = Assert.Single(WithDuration(key, tooLong).FindErrors());
            Assert.Equal(key, error.Key);
            var range = positive ? "must be more than 0 and at most 1 day" : "must be from 0 to 1 day";
            Assert.Equal($"{range} (it is {tooLong.ToString(null, System.Globalization.CultureInfo.InvariantCulture)}).", error.Problem);
        }
    }

    [Theory]
    [MemberData(nameof(Durations))]
    public void A_negative_duration_is_refused_and_zero_only_where_a_wait_of_nothing_makes_sense(string key, bool positive)
    {
        Assert.Equal(key, Assert.Single(WithDuration(key, TimeSpan.FromTicks(-1)).FindErrors()).Key);
        Assert.Equal(positive ? 1 : 0, WithDuration(key, TimeSpan.Zero).FindErrors().Count);
    }

    [Theory]
    [InlineData(nameof(PipelineOptions.ToolRetries), 0, 10)]
    [InlineData(nameof(PipelineOptions.EmitRetries), 0, 10)]
    [InlineData(nameof(PipelineOptions.MaxAttempts), 1, 1000)]
    public void A_count_takes_the_command_line_range_and_is_named_with_it_outside(string key, int min, int max)
    {
        PipelineOptions With(int value) => key switch
        {
            nameof(PipelineOptions.ToolRetries) => new() { ToolRetries = value },
            nameof(PipelineOptions.EmitRetries) => new() { EmitRetries = value },
            _ => new() { MaxAttempts = value },
        };

        Assert.Empty(With(min).FindErrors());
        Assert.Empty(With(max).FindErrors());
        foreach (var outside in new[] { min - 1, max + 1, int.MaxValue })
        {
            var error = Assert.Single(With(outside).FindErrors());
            Assert.Equal((key, $"must be from {min} to {max} (it is {outside})."), (error.Key, error.Problem));
        }
    }
}
