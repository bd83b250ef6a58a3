using System.Globalization;
using System.Text;

namespace FastBroker.Bench.Infrastructure;

/// <summary>Writes each result as one JSON object per line (hand-written: no reflection, AOT-safe); ignores progress.</summary>
public sealed class JsonLinesReporter(TextWriter output) : IBenchReporter
{
    /// <inheritdoc />
    public void Progress(string label, double fraction)
    {
    }

    /// <inheritdoc />
    public void Info(string text)
    {
    }

    /// <inheritdoc />
    public void Result(BenchResult result)
    {
        output.WriteLine(Format(result));
        output.Flush();
    }

    /// <summary>The JSON line for one result; null fields are left out.</summary>
    public static string Format(BenchResult r)
    {
        var sb = new StringBuilder(256);
        sb.Append('{');
        Str(sb, "scenario", r.Scenario, first: true);
        Str(sb, "variant", r.Variant);
        Num(sb, "msgsPerSec", r.MsgsPerSec);
        Num(sb, "bytesPerSec", r.BytesPerSec);
        Num(sb, "p50Ns", r.P50Ns);
        Num(sb, "p90Ns", r.P90Ns);
        Num(sb, "p99Ns", r.P99Ns);
        Num(sb, "p999Ns", r.P999Ns);
        Num(sb, "maxNs", r.MaxNs);
        if (r.Extra is not null)
        {
            foreach (var kv in r.Extra)
            {
                Num(sb, kv.Key, kv.Value);
            }
        }

        if (r.Baseline is not null)
        {
            Str(sb, "baseline", r.Baseline);
        }

        Num(sb, "ratio", r.Ratio is { } ratio ? Math.Round(ratio, 3) : null);
        Num(sb, "runs", r.Runs);
        Num(sb, "messages", r.Messages);
        if (r.Note is not null)
        {
            Str(sb, "note", r.Note);
        }

        sb.Append('}');
        return sb.ToString();
    }

    private static void Str(StringBuilder sb, string name, string value, bool first = false)
    {
        if (!first)
        {
            sb.Append(',');
        }

        sb.Append('"').Append(name).Append("\":\"");
        foreach (var c in value)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c < 0x20)
                    {
                        sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        sb.Append(c);
                    }

                    break;
            }
        }

        sb.Append('"');
    }

    private static void Num(StringBuilder sb, string name, double? value)
    {
        if (value is not { } v || double.IsNaN(v) || double.IsInfinity(v))
        {
            return;
        }

        sb.Append(",\"").Append(name).Append("\":");
        sb.Append(v == Math.Floor(v) && Math.Abs(v) < 1e15 ? ((long)v).ToString(CultureInfo.InvariantCulture) : v.ToString("R", CultureInfo.InvariantCulture));
    }
}
