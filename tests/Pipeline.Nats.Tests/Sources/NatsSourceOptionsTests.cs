namespace Pipeline.Nats.Tests.Sources;

public sealed class NatsSourceOptionsTests
{
    [Fact]
    public void The_defaults_are_valid_and_fit_the_default_pipeline()
    {
        var options = new NatsSourceOptions();
        options.ValidateFor(new PipelineOptions());
        Assert.Equal(TimeSpan.FromSeconds(10), options.EffectiveKeepAliveInterval); // a third of the 30 s ack wait
    }

    public static TheoryData<NatsSourceOptions, string> Invalid => new()
    {
        { new NatsSourceOptions { Stream = "" }, "Stream" },
        { new NatsSourceOptions { Stream = "a.b" }, "Stream" },
        { new NatsSourceOptions { Consumer = "has space" }, "Consumer" },
        { new NatsSourceOptions { Subjects = [] }, "Subjects" },
        { new NatsSourceOptions { FilterSubject = " " }, "FilterSubject" },
        { new NatsSourceOptions { MaxAckPending = 0 }, "MaxAckPending" },
        { new NatsSourceOptions { AckWait = TimeSpan.FromMilliseconds(999) }, "AckWait" },
        { new NatsSourceOptions { MaxDeliver = 0 }, "MaxDeliver" },
        { new NatsSourceOptions { MaxDeliver = -2 }, "MaxDeliver" },
        { new NatsSourceOptions { FetchBatch = 0 }, "FetchBatch" },
        { new NatsSourceOptions { FetchBatch = 100, MaxAckPending = 99 }, "FetchBatch" },
        { new NatsSourceOptions { FetchExpires = TimeSpan.FromMilliseconds(50) }, "FetchExpires" },
        { new NatsSourceOptions { AckWait = TimeSpan.FromSeconds(10), KeepAliveInterval = TimeSpan.FromSeconds(6) }, "KeepAliveInterval" },
        { new NatsSourceOptions { KeepAliveInterval = TimeSpan.Zero }, "KeepAliveInterval" },
        { new NatsSourceOptions { SettleTimeout = TimeSpan.Zero }, "SettleTimeout" },
        { new NatsSourceOptions { IdleTimeout = TimeSpan.Zero }, "IdleTimeout" },
        { new NatsSourceOptions { DrainTimeout = TimeSpan.FromSeconds(30) }, "DrainTimeout" }, // without an idle timeout
        { new NatsSourceOptions { IdleTimeout = TimeSpan.FromSeconds(5), DrainTimeout = TimeSpan.FromSeconds(4) }, "DrainTimeout" },
        // Past a day (a timer refuses more than about 49.7 days; a day is the flags' bound).
        { new NatsSourceOptions { AckWait = TimeSpan.FromDays(1) + TimeSpan.FromMilliseconds(3) }, "AckWait" },
        { new NatsSourceOptions { SettleTimeout = TimeSpan.FromDays(50) }, "SettleTimeout" },
        { new NatsSourceOptions { IdleTimeout = TimeSpan.FromDays(50) }, "IdleTimeout" },
        { new NatsSourceOptions { IdleTimeout = TimeSpan.FromDays(1), DrainTimeout = TimeSpan.FromDays(50) }, "DrainTimeout" },
        { new NatsSourceOptions { ReconnectBackoff = new Backoff { Base = TimeSpan.FromSeconds(1), Max = TimeSpan.FromDays(50) } }, "ReconnectBackoff" },
    };

    [Fact]
    public void Every_duration_of_one_day_is_accepted()
    {
        var day = TimeSpan.FromDays(1);
        var options = new NatsSourceOptions
        {
            AckWait = day,
            SettleTimeout = day,
            IdleTimeout = day,
            DrainTimeout = day,
            ReconnectBackoff = new Backoff { Base = day, Max = day },
        };

        Assert.Empty(options.FindErrors());
    }

    [Theory]
    [MemberData(nameof(Invalid))]
    public void Each_setting_out_of_range_is_refused_by_name(NatsSourceOptions options, string name)
    {
        var ex = Assert.ThrowsAny<ArgumentException>(options.Validate);
        Assert.Equal(name, ex.ParamName);
        Assert.Contains(name, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_MaxAckPending_the_pipeline_could_never_fill_is_refused()
    {
        // 1024 in flight + 128 fetched ahead = 1152 unacked at most; 1151 pending allowed is one short.
        var options = new NatsSourceOptions { MaxAckPending = 1151, FetchBatch = 128 };
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => options.ValidateFor(new PipelineOptions { MaxInFlight = 1024 }));
        Assert.Equal("MaxAckPending", ex.ParamName);
        (options with { MaxAckPending = 1152 }).ValidateFor(new PipelineOptions { MaxInFlight = 1024 });
    }

    [Fact]
    public void A_MaxDeliver_below_MaxAttempts_after_dispatch_is_refused()
    {
        var pipeline = new PipelineOptions { AckMode = AckMode.AckAfterDispatch, MaxAttempts = 5 };
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new NatsSourceOptions { MaxDeliver = 4 }.ValidateFor(pipeline));
        Assert.Equal("MaxDeliver", ex.ParamName);
        new NatsSourceOptions { MaxDeliver = 5 }.ValidateFor(pipeline);
        new NatsSourceOptions { MaxDeliver = -1 }.ValidateFor(pipeline);
        new NatsSourceOptions { MaxDeliver = 1 }.ValidateFor(new PipelineOptions { MaxAttempts = 5 }); // before dispatch: the claim is ownership, no redelivery
    }
}
