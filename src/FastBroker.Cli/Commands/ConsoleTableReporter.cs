using System.Globalization;
using FastBroker.Bench.Infrastructure;
using Spectre.Console;

namespace FastBroker.Cli.Commands;

/// <summary>Human output: a progress line while running (on stderr when redirected), the result table at the end.</summary>
internal sealed class ConsoleTableReporter(string scenario) : IBenchReporter
{
    private readonly List<BenchResult> _results = [];
    private readonly List<string> _notes = [];
    private string _lastLabel = "";

    public void Progress(string label, double fraction)
    {
        var line = $"[{scenario}] {label} {fraction * 100,5:0}%";
        if (Console.IsErrorRedirected)
        {
            if (label != _lastLabel)
            {
                Console.Error.WriteLine(line);
            }
        }
        else
        {
            Console.Error.Write("\r" + line.PadRight(Math.Max(1, Console.WindowWidth - 1)));
        }

        _lastLabel = label;
    }

    public void Result(BenchResult result)
    {
        _results.Add(result);
        ClearProgress();
        var tp = result.MsgsPerSec is { } m ? $"{Si(m)} msg/s" : result.BytesPerSec is { } b ? $"{Si(b)}B/s" : "";
        var lat = result.P50Ns is { } p50 ? $" p50 {Ns(p50)} p99 {Ns(result.P99Ns)}" : "";
        var ratio = result.Ratio is { } r ? $" ({r:0.00}x {result.Baseline})" : "";
        AnsiConsole.MarkupLine(Markup.Escape($"  done: {result.Variant,-28} {tp}{lat}{ratio}"));
    }

    public void Info(string text)
    {
        _notes.Add(text);
        ClearProgress();
        AnsiConsole.MarkupLine("[grey]" + Markup.Escape(text) + "[/]");
    }

    public void Finish()
    {
        ClearProgress();
        if (Console.IsOutputRedirected)
        {
            // Piped into a file or a report: no terminal width to fit, keep rows on one line.
            AnsiConsole.Profile.Width = 200;
        }

        var table = new Table().Title(Markup.Escape($"fastbroker bench {scenario}"));
        foreach (var c in new[] { "variant", "msg/s", "bytes/s", "p50", "p90", "p99", "p99.9", "max", "baseline", "ratio", "note" })
        {
            table.AddColumn(c);
        }

        foreach (var r in _results)
        {
            table.AddRow(
                Markup.Escape(r.Variant),
                r.MsgsPerSec is { } m ? Si(m) : "",
                r.BytesPerSec is { } b ? Si(b) + "B" : "",
                Ns(r.P50Ns),
                Ns(r.P90Ns),
                Ns(r.P99Ns),
                Ns(r.P999Ns),
                Ns(r.MaxNs),
                Markup.Escape(r.Baseline ?? ""),
                r.Ratio is { } x ? x.ToString("0.00", CultureInfo.InvariantCulture) + "x" : "",
                Markup.Escape(r.Note ?? ""));
        }

        AnsiConsole.Write(table);
    }

    /// <summary>
    /// Plain text when standard output is a file or a pipe (<c>bench … &gt; report.txt</c>): Spectre.Console chooses
    /// colours from <c>TERM</c>, not from where the output goes, and wrote escape codes into the file.
    /// </summary>
    public static void PlainWhenRedirected()
    {
        if (Console.IsOutputRedirected)
        {
            AnsiConsole.Profile.Capabilities.Ansi = false;
            AnsiConsole.Profile.Capabilities.ColorSystem = ColorSystem.NoColors;
        }
    }

    private void ClearProgress()
    {
        if (!Console.IsErrorRedirected && _lastLabel.Length > 0)
        {
            Console.Error.Write("\r" + new string(' ', Math.Max(1, Console.WindowWidth - 1)) + "\r");
        }
    }

    private static string Si(double v) => v switch
    {
        >= 1e9 => (v / 1e9).ToString("0.00", CultureInfo.InvariantCulture) + " G",
        >= 1e6 => (v / 1e6).ToString("0.00", CultureInfo.InvariantCulture) + " M",
        >= 1e3 => (v / 1e3).ToString("0.00", CultureInfo.InvariantCulture) + " k",
        _ => v.ToString("0", CultureInfo.InvariantCulture) + " ",
    };

    private static string Ns(long? ns) => ns switch
    {
        null => "",
        >= 1_000_000 => (ns.Value / 1e6).ToString("0.00", CultureInfo.InvariantCulture) + " ms",
        >= 1_000 => (ns.Value / 1e3).ToString("0.00", CultureInfo.InvariantCulture) + " µs",
        _ => ns.Value.ToString(CultureInfo.InvariantCulture) + " ns",
    };
}
