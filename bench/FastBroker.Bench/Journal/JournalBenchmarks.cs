using FastBroker.Bench.Infrastructure;

namespace FastBroker.Bench.Journal;

/// <summary>`fastbroker bench journal`: placeholder until the journal scenarios land.</summary>
public static class JournalBenchmarks
{
    /// <summary>Runs every journal scenario selected by the context.</summary>
    public static void Run(BenchContext ctx) => ctx.Reporter.Info("journal benchmarks not written yet");
}
