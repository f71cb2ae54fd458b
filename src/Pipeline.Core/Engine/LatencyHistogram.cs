using System.Numerics;

namespace Pipeline.Engine;

/// <summary>
/// A lock-free log-linear histogram of durations in microseconds: exact below 16 µs, then 8
/// buckets per power of two (at most 12.5% error), up to about 12 days. Recording is one
/// interlocked increment, so it can sit on the hot path.
/// </summary>
public sealed class LatencyHistogram
{
    private const int SubBuckets = 8;
    private const int LinearLimit = 16;
    private const int MaxExponent = 40;
    private readonly long[] _counts = new long[LinearLimit + ((MaxExponent - 3) * SubBuckets)];

    /// <summary>Values recorded (a sum over the buckets: reading is rare, recording is hot).</summary>
    public long Count
    {
        get
        {
            long total = 0;
            for (var i = 0; i < _counts.Length; i++)
            {
                total += Volatile.Read(ref _counts[i]);
            }

            return total;
        }
    }

    /// <summary>Records one duration.</summary>
    public void Record(TimeSpan duration)
    {
        var micros = (long)duration.TotalMicroseconds;
        Interlocked.Increment(ref _counts[IndexOf(micros < 0 ? 0 : micros)]);
    }

    /// <summary>The value at <paramref name="percentile"/> (0–100): the upper bound of the bucket it falls in.</summary>
    public TimeSpan Percentile(double percentile)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(percentile);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(percentile, 100);
        var total = Count;
        if (total == 0)
        {
            return TimeSpan.Zero;
        }

        var rank = Math.Max(1, (long)Math.Ceiling(total * percentile / 100));
        long seen = 0;
        for (var i = 0; i < _counts.Length; i++)
        {
            seen += Volatile.Read(ref _counts[i]);
            if (seen >= rank)
            {
                return TimeSpan.FromMicroseconds(UpperBound(i));
            }
        }

        return TimeSpan.FromMicroseconds(UpperBound(_counts.Length - 1));
    }

    internal static int IndexOf(long micros)
    {
        if (micros < LinearLimit)
        {
            return (int)micros;
        }

        var exponent = Math.Min(63 - BitOperations.LeadingZeroCount((ulong)micros), MaxExponent - 1);
        var sub = (int)((micros >> (exponent - 3)) & (SubBuckets - 1));
        return LinearLimit + ((exponent - 4) * SubBuckets) + sub;
    }

    internal static long UpperBound(int index)
    {
        if (index < LinearLimit)
        {
            return index;
        }

        var exponent = ((index - LinearLimit) / SubBuckets) + 4;
        var sub = (index - LinearLimit) % SubBuckets;
        return ((long)(SubBuckets + sub + 1) << (exponent - 3)) - 1;
    }
}
