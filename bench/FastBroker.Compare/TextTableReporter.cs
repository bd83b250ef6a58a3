using System.Globalization;
using FastBroker.Bench.Infrastructure;

namespace FastBroker.Compare;

/// <summary>Human output: progress lines on stderr while running, each result as it ends, a plain table at the end.</summary>
internal sealed class TextTableReporter(TextWriter output) : IBenchReporter
{
    private readonly List<BenchResult> _results = [];
    private string _lastLabel = "";

    public void Progress(string label, double fraction)
    {
        if (label != _lastLabel)
        {
            Console.Error.WriteLine($"[compare] {label} {fraction * 100,5:0}%");
            _lastLabel = label;
        }
    }

    public void Info(string text) => output.WriteLine(text);

    public void Result(BenchResult result)
    {
        _results.Add(result);
        var tp = result.MsgsPerSec is { } m ? $"{Si(m)} msg/s" : "";
        var lat = result.P50Ns is { } p50 ? $" p50 {Ns(p50)} p99 {Ns(result.P99Ns)}" : "";
        var ratio = result.Ratio is { } r ? $" ({r:0.00}x {result.Baseline})" : "";
        output.WriteLine($"  done: {result.Variant,-36} {tp}{lat}{ratio}");
    }

    /// <summary>Writes the table of every result so far, then the notes (one per variant).</summary>
    public void Finish()
    {
        string[] header = ["variant", "msg/s", "bytes/s", "p50", "p90", "p99", "p99.9", "max", "baseline", "ratio", "vs others"];
        var rows = _results.Select(r => new[]
        {
            r.Variant,
            r.MsgsPerSec is { } m ? Si(m) : "",
            r.BytesPerSec is { } b ? Si(b) + "B" : "",
            Ns(r.P50Ns), Ns(r.P90Ns), Ns(r.P99Ns), Ns(r.P999Ns), Ns(r.MaxNs),
            r.Baseline ?? "",
            r.Ratio is { } x ? x.ToString("0.00", CultureInfo.InvariantCulture) + "x" : "",
            string.Join(" ", (r.Extra ?? []).Select(e => $"{e.Key} {e.Value.ToString("0.00", CultureInfo.InvariantCulture)}x")),
        }).ToList();
        var widths = header.Select((h, i) => Math.Max(h.Length, rows.Count == 0 ? 0 : rows.Max(r => r[i].Length))).ToArray();
        output.WriteLine();
        output.WriteLine(string.Join("  ", header.Select((h, i) => h.PadRight(widths[i]))).TrimEnd());
        foreach (var row in rows)
        {
            output.WriteLine(string.Join("  ", row.Select((c, i) => c.PadRight(widths[i]))).TrimEnd());
        }

        output.WriteLine();
        foreach (var r in _results.Where(r => r.Note is not null))
        {
            output.WriteLine($"{r.Variant}: {r.Note}");
        }

        output.Flush();
    }

    private static string Si(double v) => v switch
    {
        >= 1e9 => (v / 1e9).ToString("0.00", CultureInfo.InvariantCulture) + " G",
        >= 1e6 => (v / 1e6).ToString("0.00", CultureInfo.InvariantCulture) + " M",
        >= 1e3 => (v / 1e3).ToString("0.0", CultureInfo.InvariantCulture) + " k",
        _ => v.ToString("0", CultureInfo.InvariantCulture) + " ",
    };

    private static string Ns(long? ns) => ns switch
    {
        null => "",
        >= 1_000_000 => (ns.Value / 1e6).ToString("0.00", CultureInfo.InvariantCulture) + " ms",
        >= 1_000 => (ns.Value / 1e3).ToString("0.0", CultureInfo.InvariantCulture) + " µs",
        _ => ns.Value.ToString(CultureInfo.InvariantCulture) + " ns",
    };
}
