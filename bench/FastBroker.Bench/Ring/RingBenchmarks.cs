using FastBroker.Bench.Infrastructure;
using FastBroker.Ring;

namespace FastBroker.Bench.Ring;

/// <summary>
/// <c>fastbroker bench ring</c>: each ring scenario next to a bounded System.Threading.Channels baseline carrying
/// the same payload and count, measured in the same process run, plus a round-trip latency test.
/// </summary>
/// <remarks>
/// Wait strategies follow the core count. The 1P-1C throughput scenarios (two threads) use the yielding
/// strategy, as the LMAX throughput tests do: a busy-spinning consumer keeps pace event by event and pulls the
/// cursor's cache line across cores on every publish (measured at a tenth of the yielding rate on this VM),
/// while a yielding one lets the producer run ahead and then drains large batches. The ping-pong pair
/// busy-spins (latency, one thread per core). <c>value-1p1c</c> adds the strategy's opt-in
/// <see cref="BatchCoalescing"/>; <c>value-1p1c-plain</c> runs the same code without it, in the same run.
/// Scenarios with four threads use the default hybrid spin→yield→block strategy so no waiting thread holds a
/// core a working one needs. Each note says which.
/// </remarks>
public static class RingBenchmarks
{
    /// <summary>Messages per run when <c>--messages</c> is not given: about 1-2 minutes for the whole suite on 2 cores (ping-pong does messages/100 round trips).</summary>
    public const long DefaultMessages = 20_000_000;

    private const string Scenario = "ring";

    /// <summary>Runs every ring scenario selected by the context.</summary>
    public static void Run(BenchContext ctx)
    {
        var messages = ctx.Messages ?? DefaultMessages;
        var roundTrips = (int)Math.Clamp(messages / 100, 1_000, 1_000_000);
        var cores = Environment.ProcessorCount;
        var yieldNote = $"yielding: 2 threads on {cores} cores";
        var coalesceNote = $"yielding with batch coalescing (a batch under {RingScenarios.Coalescing.MinBatch} is held {RingScenarios.Coalescing.MaxDelay.TotalMicroseconds:0.#} µs): 2 threads on {cores} cores";
        var hybridNote = $"hybrid spin→yield→block: 4 threads on {cores} cores";

        ctx.WarmUpMachine();
        ctx.Reporter.Info($"ring bench: {messages:N0} messages per run, {ctx.Runs} runs (median), ring/channel capacity {RingScenarios.RingSize:N0}, {cores} cores");

        // 1 producer, 1 consumer: class entries, struct entries and batch publish share one channel baseline.
        if (AnySelected(ctx, "channel-1p1c", "class-1p1c", "value-1p1c-plain", "value-1p1c", "batch-1p1c"))
        {
            var channel = Throughput(ctx, "channel-1p1c", messages, ChannelScenarios.OneToOne, "bounded channel, async reader/writer");
            Compare(ctx, "class-1p1c", messages, m => RingScenarios.ClassOneToOne(m, new YieldingWaitStrategy()), channel, yieldNote);
            Compare(ctx, "value-1p1c-plain", messages, m => RingScenarios.ValueOneToOne(m, new YieldingWaitStrategy()), channel, yieldNote);
            Compare(ctx, "value-1p1c", messages, m => RingScenarios.ValueOneToOne(m, new YieldingWaitStrategy(RingScenarios.Coalescing)), channel, coalesceNote);
            Compare(ctx, "batch-1p1c", messages, m => RingScenarios.BatchOneToOne(m, new YieldingWaitStrategy()), channel, $"{yieldNote}, {RingScenarios.BatchSize} per claim");
        }

        if (AnySelected(ctx, "channel-3p1c", "3p1c"))
        {
            var channel = Throughput(ctx, "channel-3p1c", messages, ChannelScenarios.ThreeToOne, "bounded channel, 3 writers");
            Compare(ctx, "3p1c", messages, m => RingScenarios.ThreeToOne(m, new HybridWaitStrategy()), channel, hybridNote);
        }

        if (AnySelected(ctx, "channel-1p3c-fanout", "1p3c-fanout"))
        {
            var channel = Throughput(ctx, "channel-1p3c-fanout", messages, ChannelScenarios.OneToThreeFanOut, "3 bounded channels, one writer");
            Compare(ctx, "1p3c-fanout", messages, m => RingScenarios.OneToThreeFanOut(m, new HybridWaitStrategy()), channel, hybridNote);
        }

        if (AnySelected(ctx, "channel-1p3c-workers", "1p3c-workers"))
        {
            var channel = Throughput(ctx, "channel-1p3c-workers", messages, ChannelScenarios.OneToThreeWorkers, "1 bounded channel, 3 readers");
            Compare(ctx, "1p3c-workers", messages, m => RingScenarios.OneToThreeWorkers(m, new HybridWaitStrategy()), channel, hybridNote);
        }

        if (AnySelected(ctx, "channel-pingpong", "pingpong"))
        {
            var channel = Latency(ctx, "channel-pingpong", roundTrips, ChannelScenarios.PingPong, "busy-polled channels: 2 threads, round trip");
            if (ctx.Selected("channel-pingpong"))
            {
                ctx.Reporter.Result(channel);
            }

            if (ctx.Selected("pingpong"))
            {
                ctx.Reporter.Result(Latency(ctx, "pingpong", roundTrips, RingScenarios.PingPong, "busy-spin: 2 threads, round trip").ComparedWith(channel));
            }
        }
    }

    private static bool AnySelected(BenchContext ctx, params string[] variants) => variants.Any(ctx.Selected);

    /// <summary>Measures a baseline and reports it if selected; returns it for the ratio either way.</summary>
    private static BenchResult Throughput(BenchContext ctx, string variant, long messages, Func<long, double> run, string note)
    {
        var result = Measure(ctx, variant, messages, run, note);
        if (ctx.Selected(variant))
        {
            ctx.Reporter.Result(result);
        }

        return result;
    }

    private static void Compare(BenchContext ctx, string variant, long messages, Func<long, double> run, BenchResult baseline, string note)
    {
        if (ctx.Selected(variant))
        {
            ctx.Reporter.Result(Measure(ctx, variant, messages, run, note).ComparedWith(baseline));
        }
    }

    private static BenchResult Measure(BenchContext ctx, string variant, long messages, Func<long, double> run, string note)
    {
        var rate = ctx.MedianOf(variant, _ =>
        {
            var seconds = run(messages);
            return messages / seconds;
        });
        return new BenchResult(Scenario, variant) { MsgsPerSec = rate, Runs = ctx.Runs, Messages = messages, Note = note };
    }

    private static BenchResult Latency(BenchContext ctx, string variant, int roundTrips, Func<int, LogLinearHistogram?, double> run, string note)
    {
        var merged = new LogLinearHistogram();
        var perRun = new LogLinearHistogram();
        var rate = ctx.MedianOf(variant, runIndex =>
        {
            perRun.Reset();
            var seconds = run(roundTrips, perRun);
            if (runIndex >= 0)
            {
                merged.Merge(perRun);
            }

            return roundTrips / seconds;
        });

        return new BenchResult(Scenario, variant) { MsgsPerSec = rate, Runs = ctx.Runs, Messages = roundTrips, Note = note + " (msg/s = round trips/s)" }
            .WithLatency(merged);
    }
}
