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
    };

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

[Collection(NatsCollection.Name)]
public sealed class NatsSourceBindTests(NatsServerFixture server)
{
    [Fact]
    public async Task Bind_only_names_the_missing_stream_and_consumer()
    {
        await server.StartAsync();
        await using var connection = server.Connect();
        var stream = NatsServerFixture.UniqueName("absent");
        await using var source = new NatsCommandSource(connection, new NatsSourceOptions { Stream = stream, Consumer = "nobody", CreateIfMissing = false });

        var ex = await Assert.ThrowsAsync<InvalidOperationException>(async () => await source.InitializeAsync(CancellationToken.None));

        Assert.Contains($"'{stream}'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("'nobody'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("CreateIfMissing", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task With_IdleTimeout_the_source_ends_once_nothing_arrives()
    {
        await server.StartAsync();
        await using var connection = server.Connect();
        var stream = NatsServerFixture.UniqueName("idle");
        await using var source = new NatsCommandSource(connection, new NatsSourceOptions { Stream = stream, Subjects = [$"{stream}.>"], IdleTimeout = TimeSpan.FromMilliseconds(500), FetchExpires = TimeSpan.FromSeconds(1) });
        var clock = System.Diagnostics.Stopwatch.StartNew();

        Assert.Null(await source.NextAsync(CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(450), TimeSpan.FromSeconds(5));
        Assert.Null(await source.NextAsync(CancellationToken.None)); // stays exhausted
    }
}

[Collection(NatsCollection.Name)]
public sealed class NatsSourceIdleTests(NatsServerFixture server)
{
    [Fact]
    public async Task The_idle_window_counts_from_the_first_fetch_not_from_construction()
    {
        await server.StartAsync();
        await using var connection = server.Connect();
        var stream = NatsServerFixture.UniqueName("idlefrom");
        var time = new JumpingTime();
        var options = new NatsSourceOptions { Stream = stream, Subjects = [$"{stream}.>"], IdleTimeout = TimeSpan.FromSeconds(2), FetchExpires = TimeSpan.FromSeconds(1) };
        await using var source = new NatsCommandSource(connection, options, timeProvider: time);
        // A slow start: connecting, or creating the stream and consumer, took longer than the idle window.
        time.Jump(TimeSpan.FromSeconds(10));
        await JetStream.CreateStreamAsync(connection, stream, $"{stream}.>");
        await JetStream.PublishAsync(connection, $"{stream}.a", [TestCommands.Make("after-a-slow-start")]);

        var pulled = await source.NextAsync(CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(10));

        Assert.True(pulled is not null, $"fetched {source.Fetched}, fetch errors {source.FetchErrors}");
        Assert.Equal("after-a-slow-start", pulled.Value.Outcome.Command?.CommandId);
        await source.AckAsync(pulled.Value.Handle, CancellationToken.None);
        // The window still ends the source once nothing more arrives.
        Assert.Null(await source.NextAsync(CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
    }

    /// <summary>The system clock, but its timestamps can jump ahead (time passing while the source was not fetching).</summary>
    private sealed class JumpingTime : TimeProvider
    {
        private long _offset;

        public void Jump(TimeSpan by) => Interlocked.Add(ref _offset, (long)(by.TotalSeconds * TimestampFrequency));

        public override long GetTimestamp() => base.GetTimestamp() + Interlocked.Read(ref _offset);
    }
}
