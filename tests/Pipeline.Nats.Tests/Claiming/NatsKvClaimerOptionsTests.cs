namespace Pipeline.Nats.Tests.Claiming;

/// <summary>NatsKvClaimerOptions: the intervals and timeouts armed as timers are at most a day.</summary>
public sealed class NatsKvClaimerOptionsTests
{
    [Fact]
    public void The_defaults_and_a_day_for_each_timer_are_accepted()
    {
        var day = TimeSpan.FromDays(1);
        Assert.Empty(new NatsKvClaimerOptions().FindErrors());
        Assert.Empty(new NatsKvClaimerOptions { HeartbeatInterval = day / 2, WorkerTimeout = day, RecordTimeout = day }.FindErrors());
    }

    public static TheoryData<NatsKvClaimerOptions, string> PastADay => new()
    {
        // WorkerTimeout (twice the heartbeat at least) cannot fit a day then either: it is named too.
        { new NatsKvClaimerOptions { HeartbeatInterval = TimeSpan.FromDays(50), WorkerTimeout = TimeSpan.FromDays(1) }, "HeartbeatInterval" },
        { new NatsKvClaimerOptions { WorkerTimeout = TimeSpan.FromDays(50) }, "WorkerTimeout" },
        { new NatsKvClaimerOptions { RecordTimeout = TimeSpan.FromDays(50) }, "RecordTimeout" },
    };

    [Theory]
    [MemberData(nameof(PastADay))]
    public void A_timer_past_a_day_is_refused_by_name_with_the_range(NatsKvClaimerOptions options, string name)
    {
        var error = Assert.Single(options.FindErrors(), e => e.ParamName == name);
        Assert.Contains("1 day", error.Message, StringComparison.Ordinal);
    }
}
