using System.Text.Json;
using FastBroker.Bench.Infrastructure;

namespace FastBroker.Bench.Tests;

public class JsonLinesReporterTests
{
    [Fact]
    public void A_throughput_line_has_the_documented_fields()
    {
        var channel = new BenchResult("ring", "channel-1p1c") { MsgsPerSec = 10_000_000 };
        var ring = new BenchResult("ring", "value-1p1c") { MsgsPerSec = 95_000_000, Runs = 3, Note = "busy \"spin\"" }.ComparedWith(channel);

        using var doc = JsonDocument.Parse(JsonLinesReporter.Format(ring));
        var root = doc.RootElement;
        Assert.Equal("ring", root.GetProperty("scenario").GetString());
        Assert.Equal("value-1p1c", root.GetProperty("variant").GetString());
        Assert.Equal(95_000_000, root.GetProperty("msgsPerSec").GetDouble());
        Assert.Equal("channel-1p1c", root.GetProperty("baseline").GetString());
        Assert.Equal(9.5, root.GetProperty("ratio").GetDouble(), 3);
        Assert.Equal("busy \"spin\"", root.GetProperty("note").GetString());
        Assert.False(root.TryGetProperty("p50Ns", out _));
    }

    [Fact]
    public void A_latency_line_carries_percentiles_from_the_histogram()
    {
        var h = new LogLinearHistogram();
        for (var i = 1; i <= 1000; i++)
        {
            h.Record(i);
        }

        var line = JsonLinesReporter.Format(new BenchResult("ring", "pingpong").WithLatency(h));
        using var doc = JsonDocument.Parse(line);
        var root = doc.RootElement;
        // Upper bucket edges: within 1/128 above the exact value.
        Assert.InRange(root.GetProperty("p50Ns").GetInt64(), 500, 504);
        Assert.InRange(root.GetProperty("p99Ns").GetInt64(), 990, 998);
        Assert.Equal(1000, root.GetProperty("maxNs").GetInt64());
        Assert.DoesNotContain('\n', line);
    }

    [Fact]
    public void Bytes_ratio_is_used_when_both_sides_report_bytes()
    {
        var raw = new BenchResult("journal", "raw-buffered") { BytesPerSec = 2e9 };
        var append = new BenchResult("journal", "append-1k-none") { MsgsPerSec = 1e6, BytesPerSec = 1e9 }.ComparedWith(raw);
        Assert.Equal(0.5, append.Ratio!.Value, 6);
    }

    [Fact]
    public void Median_of_odd_and_even_counts()
    {
        Assert.Equal(3, BenchContext.Median([5, 1, 3]));
        Assert.Equal(2.5, BenchContext.Median([4, 1, 2, 3]));
    }
}
