using System.Diagnostics;

namespace FastBroker.Bench.Infrastructure;

/// <summary>What a benchmark scenario runner is given: sizes, run count and where to report.</summary>
/// <param name="Reporter">Progress and result sink.</param>
/// <param name="Messages">Messages per run; null = the scenario's default.</param>
/// <param name="Runs">Runs per variant; the reported figure is the median.</param>
/// <param name="WarmupSeconds">CPU-busy warm-up before the first measurement: this VM wakes cores slowly until it has been busy for ~15 s.</param>
/// <param name="Filter">Only variants whose name contains this text run; null = all.</param>
/// <param name="WorkDirectory">Where file-based benchmarks put their files; null = a temp directory.</param>
public sealed record BenchContext(
    IBenchReporter Reporter,
    long? Messages = null,
    int Runs = 3,
    double WarmupSeconds = 20,
    string? Filter = null,
    string? WorkDirectory = null)
{
    /// <summary>True when <paramref name="variant"/> passes <see cref="Filter"/>.</summary>
    public bool Selected(string variant) => Filter is null || variant.Contains(Filter, StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Runs <paramref name="run"/> <see cref="Runs"/> times (after one discarded warm-up run) and returns the
    /// median of the values it returns, reporting progress as "label run i/n".
    /// </summary>
    public double MedianOf(string label, Func<int, double> run)
    {
        Reporter.Progress($"{label} (warm-up)", 0);
        run(-1);
        var values = new double[Math.Max(1, Runs)];
        for (var i = 0; i < values.Length; i++)
        {
            Reporter.Progress($"{label} run {i + 1}/{values.Length}", (double)i / values.Length);
            values[i] = run(i);
        }

        Reporter.Progress(label, 1);
        return Median(values);
    }

    /// <summary>The median of <paramref name="values"/> (mean of the middle two for an even count).</summary>
    public static double Median(double[] values)
    {
        var sorted = (double[])values.Clone();
        Array.Sort(sorted);
        var mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    /// <summary>
    /// Keeps every core busy for <see cref="WarmupSeconds"/> so that cross-core wake-ups are at full speed
    /// when measuring starts (a cold VM here runs a ring at a fifth of its warm rate).
    /// </summary>
    public void WarmUpMachine()
    {
        if (WarmupSeconds <= 0)
        {
            return;
        }

        Reporter.Progress("warming up the machine", 0);
        var until = Stopwatch.GetTimestamp() + (long)(WarmupSeconds * Stopwatch.Frequency);
        var threads = new Thread[Environment.ProcessorCount];
        for (var i = 0; i < threads.Length; i++)
        {
            threads[i] = new Thread(() =>
            {
                var x = 0UL;
                while (Stopwatch.GetTimestamp() < until)
                {
                    for (var k = 0; k < 10_000; k++)
                    {
                        x = (x * 6364136223846793005UL) + 1442695040888963407UL;
                    }

                    Thread.Yield();
                }

                GC.KeepAlive(x);
            })
            { IsBackground = true, Name = "bench-warmup-" + i };
            threads[i].Start();
        }

        foreach (var t in threads)
        {
            t.Join();
        }

        Reporter.Progress("warming up the machine", 1);
    }
}
