namespace Pipeline.Tests.Engine;

public sealed class LatencyHistogramTests
{
    [Fact]
    public void Empty_histogram_reports_zero()
    {
        var histogram = new LatencyHistogram();

        Assert.Equal(0, histogram.Count);
        Assert.Equal(TimeSpan.Zero, histogram.Percentile(99));
    }

    [Fact]
    public void Values_below_16_microseconds_are_exact()
    {
        var histogram = new LatencyHistogram();
        for (var us = 1; us <= 10; us++)
        {
            histogram.Record(TimeSpan.FromMicroseconds(us));
        }

        Assert.Equal(10, histogram.Count);
        Assert.Equal(TimeSpan.FromMicroseconds(5), histogram.Percentile(50));
        Assert.Equal(TimeSpan.FromMicroseconds(10), histogram.Percentile(100));
        Assert.Equal(TimeSpan.FromMicroseconds(1), histogram.Percentile(0));
    }

    [Theory]
    [InlineData(100)]
    [InlineData(1_000)]
    [InlineData(12_345)]
    [InlineData(10_000_000)]
    public void Larger_values_land_within_an_eighth_above_their_true_value(long micros)
    {
        var histogram = new LatencyHistogram();
        histogram.Record(TimeSpan.FromMicroseconds(micros));

        var reported = histogram.Percentile(50).TotalMicroseconds;

        Assert.InRange(reported, micros, micros * 1.125);
    }

    [Fact]
    public void Percentiles_follow_the_distribution()
    {
        // 90 fast values at 10 µs and 10 slow ones at 1 ms: p50 and p90 are fast, p95 and p99 slow.
        var histogram = new LatencyHistogram();
        for (var i = 0; i < 90; i++)
        {
            histogram.Record(TimeSpan.FromMicroseconds(10));
        }

        for (var i = 0; i < 10; i++)
        {
            histogram.Record(TimeSpan.FromMilliseconds(1));
        }

        Assert.Equal(TimeSpan.FromMicroseconds(10), histogram.Percentile(50));
        Assert.Equal(TimeSpan.FromMicroseconds(10), histogram.Percentile(90));
        Assert.InRange(histogram.Percentile(95).TotalMicroseconds, 1_000, 1_125);
        Assert.InRange(histogram.Percentile(99).TotalMicroseconds, 1_000, 1_125);
    }

    [Fact]
    public void Every_bucket_index_maps_back_to_a_bound_that_contains_it()
    {
        long previousBound = -1;
        for (long micros = 0; micros < 1 << 20; micros += 1 + (micros / 64))
        {
            var index = LatencyHistogram.IndexOf(micros);
            var bound = LatencyHistogram.UpperBound(index);
            Assert.True(bound >= micros, $"{micros} µs fell in bucket {index} bounded by {bound}");
            Assert.True(bound >= previousBound, "bounds must not decrease");
            previousBound = bound;
        }
    }

    [Fact]
    public void Out_of_range_percentiles_are_refused()
    {
        var histogram = new LatencyHistogram();

        Assert.Throws<ArgumentOutOfRangeException>(() => histogram.Percentile(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => histogram.Percentile(101));
    }
}
