using FastBroker.Bench.Infrastructure;

namespace FastBroker.Bench.Tests;

public class LogLinearHistogramTests
{
    [Fact]
    public void Percentiles_of_a_uniform_range_are_within_the_stated_relative_error()
    {
        var h = new LogLinearHistogram();
        for (long v = 1; v <= 1_000_000; v++)
        {
            h.Record(v);
        }

        Assert.Equal(1_000_000, h.Count);
        Assert.Equal(1_000_000, h.Max);
        Assert.Equal(1, h.Min);
        foreach (var (p, exact) in new[] { (50.0, 500_000L), (90.0, 900_000L), (99.0, 990_000L), (99.9, 999_000L) })
        {
            var got = h.ValueAtPercentile(p);
            var error = Math.Abs(got - exact) / (double)exact;
            Assert.True(error <= 1.0 / (1 << LogLinearHistogram.SubBucketBits), $"p{p}: {got} vs {exact} ({error:P2})");
        }
    }

    [Fact]
    public void Small_values_are_exact()
    {
        var h = new LogLinearHistogram();
        foreach (var v in new long[] { 0, 1, 2, 3, 100, 127 })
        {
            h.Record(v);
        }

        Assert.Equal(0, h.ValueAtPercentile(1));
        Assert.Equal(3, h.ValueAtPercentile(60));
        Assert.Equal(127, h.ValueAtPercentile(100));
    }

    [Fact]
    public void Every_bucket_index_maps_back_to_a_range_containing_the_value()
    {
        var rng = new Random(42);
        for (var i = 0; i < 100_000; i++)
        {
            var v = (long)(rng.NextDouble() * Math.Pow(2, rng.Next(0, 62)));
            var idx = LogLinearHistogram.IndexOf(v);
            Assert.True(LogLinearHistogram.HighestEquivalent(idx) >= v, $"value {v} above its bucket's top");
            if (idx > 0)
            {
                Assert.True(LogLinearHistogram.HighestEquivalent(idx - 1) < v, $"value {v} belongs to a lower bucket");
            }
        }
    }

    [Fact]
    public void Coordinated_omission_correction_back_fills_missed_samples()
    {
        var h = new LogLinearHistogram();
        for (var i = 0; i < 99; i++)
        {
            h.RecordCorrected(1_000, expectedInterval: 10_000);
        }

        // One 1 ms stall at a 10 µs schedule hides 99 more samples at 990, 980, … 10 µs.
        h.RecordCorrected(1_000_000, expectedInterval: 10_000);
        Assert.Equal(99 + 100, h.Count);
        Assert.True(h.ValueAtPercentile(90) > 100_000, "uncorrected p90 would be 1 µs; corrected it reflects the stall");
    }

    [Fact]
    public void Merge_adds_counts_and_keeps_extremes()
    {
        var a = new LogLinearHistogram();
        var b = new LogLinearHistogram();
        a.Record(10);
        b.Record(1_000);
        b.Record(5);
        a.Merge(b);
        Assert.Equal(3, a.Count);
        Assert.Equal(1_000, a.Max);
        Assert.Equal(5, a.Min);
    }

    [Fact]
    public void Recording_does_not_allocate()
    {
        var h = new LogLinearHistogram();
        h.Record(1);
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1_000_000; i++)
        {
            h.Record(i * 37L);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
