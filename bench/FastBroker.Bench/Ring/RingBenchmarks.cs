using FastBroker.Bench.Infrastructure;

namespace FastBroker.Bench.Ring;

/// <summary>`fastbroker bench ring`: placeholder until the ring scenarios land.</summary>
public static class RingBenchmarks
{
    /// <summary>Runs every ring scenario selected by the context.</summary>
    public static void Run(BenchContext ctx) => ctx.Reporter.Info("ring benchmarks not written yet");
}
