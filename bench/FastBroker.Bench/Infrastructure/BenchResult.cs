namespace FastBroker.Bench.Infrastructure;

/// <summary>
/// One measured line of a benchmark: throughput and/or latency figures for a (scenario, variant), with the
/// same-run baseline it is compared against. Serialised as one JSON object per line with <c>--json</c>.
/// </summary>
public sealed record BenchResult(string Scenario, string Variant)
{
    /// <summary>Messages (events, records) per second; median over runs.</summary>
    public double? MsgsPerSec { get; init; }

    /// <summary>Payload bytes per second; median over runs.</summary>
    public double? BytesPerSec { get; init; }

    /// <summary>Latency percentiles in nanoseconds.</summary>
    public long? P50Ns { get; init; }

    /// <summary>90th percentile, ns.</summary>
    public long? P90Ns { get; init; }

    /// <summary>99th percentile, ns.</summary>
    public long? P99Ns { get; init; }

    /// <summary>99.9th percentile, ns.</summary>
    public long? P999Ns { get; init; }

    /// <summary>Largest sample, ns.</summary>
    public long? MaxNs { get; init; }

    /// <summary>The variant this one is compared with (measured in the same run).</summary>
    public string? Baseline { get; init; }

    /// <summary>This variant's figure divided by the baseline's.</summary>
    public double? Ratio { get; init; }

    /// <summary>How many runs the median was taken over.</summary>
    public int? Runs { get; init; }

    /// <summary>Messages per run.</summary>
    public long? Messages { get; init; }

    /// <summary>Wait strategy or other configuration worth printing (e.g. "blocking: 4 threads on 2 cores").</summary>
    public string? Note { get; init; }

    /// <summary>Extra numeric fields written as-is into the JSON line.</summary>
    public IReadOnlyList<KeyValuePair<string, double>>? Extra { get; init; }

    /// <summary>Attaches latency percentiles from a histogram.</summary>
    public BenchResult WithLatency(LogLinearHistogram h) => this with
    {
        P50Ns = h.ValueAtPercentile(50),
        P90Ns = h.ValueAtPercentile(90),
        P99Ns = h.ValueAtPercentile(99),
        P999Ns = h.ValueAtPercentile(99.9),
        MaxNs = h.Max,
    };

    /// <summary>Sets <see cref="Baseline"/> and <see cref="Ratio"/> from a same-run baseline's throughput (msgs/s, else bytes/s).</summary>
    public BenchResult ComparedWith(BenchResult baseline)
    {
        double? ratio = null;
        if (MsgsPerSec is { } m && baseline.MsgsPerSec is { } bm && bm > 0 && BytesPerSec is null)
        {
            ratio = m / bm;
        }
        else if (BytesPerSec is { } b && baseline.BytesPerSec is { } bb && bb > 0)
        {
            ratio = b / bb;
        }
        else if (MsgsPerSec is { } m2 && baseline.MsgsPerSec is { } bm2 && bm2 > 0)
        {
            ratio = m2 / bm2;
        }

        return this with { Baseline = baseline.Variant, Ratio = ratio };
    }
}
