namespace FastBroker.Bench.Infrastructure;

/// <summary>
/// A log-linear latency histogram (HdrHistogram is not on the mirror): values are bucketed by their
/// highest set bit into 2^<see cref="SubBucketBits"/> linear sub-buckets, so the relative error is below
/// 1 / 2^SubBucketBits (0.8 % with 7 bits) across the whole range of <see cref="long"/>. Recording is a few
/// instructions and never allocates; the counts array is allocated once.
/// </summary>
/// <remarks>Not thread-safe: one recorder per thread, <see cref="Merge"/> afterwards.</remarks>
public sealed class LogLinearHistogram
{
    /// <summary>Sub-bucket resolution: 128 linear buckets per power of two.</summary>
    public const int SubBucketBits = 7;

    private const int SubBucketCount = 1 << SubBucketBits;
    private const int BucketCount = 64 - SubBucketBits + 1;

    private readonly long[] _counts = new long[BucketCount * SubBucketCount];
    private long _count;
    private long _max;
    private long _min = long.MaxValue;
    private double _sum;

    /// <summary>Number of recorded values.</summary>
    public long Count => _count;

    /// <summary>Largest recorded value (exact).</summary>
    public long Max => _count == 0 ? 0 : _max;

    /// <summary>Smallest recorded value (exact).</summary>
    public long Min => _count == 0 ? 0 : _min;

    /// <summary>Arithmetic mean of recorded values.</summary>
    public double Mean => _count == 0 ? 0 : _sum / _count;

    /// <summary>Records one value (negative values count as zero).</summary>
    public void Record(long value)
    {
        if (value < 0)
        {
            value = 0;
        }

        _counts[IndexOf(value)]++;
        _count++;
        _sum += value;
        if (value > _max)
        {
            _max = value;
        }

        if (value < _min)
        {
            _min = value;
        }
    }

    /// <summary>
    /// Records a value measured against a fixed schedule and back-fills the samples a stalled sender would
    /// have taken (coordinated-omission correction, as HdrHistogram's <c>recordValueWithExpectedInterval</c>).
    /// </summary>
    public void RecordCorrected(long value, long expectedInterval)
    {
        Record(value);
        if (expectedInterval <= 0)
        {
            return;
        }

        for (var missing = value - expectedInterval; missing >= expectedInterval; missing -= expectedInterval)
        {
            Record(missing);
        }
    }

    /// <summary>The value below which <paramref name="percentile"/> percent of samples fall (upper bucket edge, clamped to max).</summary>
    public long ValueAtPercentile(double percentile)
    {
        if (_count == 0)
        {
            return 0;
        }

        var target = (long)Math.Ceiling(Math.Clamp(percentile, 0, 100) / 100.0 * _count);
        if (target < 1)
        {
            target = 1;
        }

        long seen = 0;
        for (var i = 0; i < _counts.Length; i++)
        {
            seen += _counts[i];
            if (seen >= target)
            {
                return Math.Min(HighestEquivalent(i), _max);
            }
        }

        return _max;
    }

    /// <summary>Adds every sample of <paramref name="other"/> to this histogram.</summary>
    public void Merge(LogLinearHistogram other)
    {
        for (var i = 0; i < _counts.Length; i++)
        {
            _counts[i] += other._counts[i];
        }

        _count += other._count;
        _sum += other._sum;
        _max = Math.Max(_max, other._max);
        _min = Math.Min(_min, other._min);
    }

    /// <summary>Forgets every sample.</summary>
    public void Reset()
    {
        Array.Clear(_counts);
        _count = 0;
        _sum = 0;
        _max = 0;
        _min = long.MaxValue;
    }

    internal static int IndexOf(long value)
    {
        if (value < SubBucketCount)
        {
            return (int)value;
        }

        // Bucket b >= 1 holds [2^(b+SubBucketBits-1), 2^(b+SubBucketBits)) in steps of 2^(b-1).
        var msb = 63 - System.Numerics.BitOperations.LeadingZeroCount((ulong)value);
        var bucket = msb - SubBucketBits + 1;
        var sub = (int)(value >> (bucket - 1)) & (SubBucketCount - 1);
        return (bucket * SubBucketCount) + sub;
    }

    internal static long HighestEquivalent(int index)
    {
        var bucket = index >> SubBucketBits;
        var sub = index & (SubBucketCount - 1);
        if (bucket == 0)
        {
            return sub;
        }

        var shift = bucket - 1;
        var low = ((long)(sub | SubBucketCount)) << shift;
        return low + (1L << shift) - 1;
    }
}
