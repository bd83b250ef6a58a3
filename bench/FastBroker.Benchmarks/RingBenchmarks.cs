using BenchmarkDotNet.Attributes;
using FastBroker.Bench.Ring;
using FastBroker.Ring;

namespace FastBroker.Benchmarks;

/// <summary>
/// The <c>fastbroker bench ring</c> 1P-1C scenarios under BenchmarkDotNet: the same code
/// (<see cref="RingScenarios"/>, <see cref="ChannelScenarios"/>), one operation = one message. Each invocation
/// builds its ring and consumer thread (a 1 MiB array, amortised over <see cref="Messages"/> messages), so
/// the allocation column shows a fraction of a byte per message rather than zero.
/// </summary>
[MemoryDiagnoser]
public class RingPublishConsumeBenchmarks
{
    private const int Messages = 1_000_000;
    private const int RoundTrips = 20_000;

    [Benchmark(Baseline = true, OperationsPerInvoke = Messages)]
    public double Channel1P1C() => ChannelScenarios.OneToOne(Messages);

    [Benchmark(OperationsPerInvoke = Messages)]
    public double Value1P1C() => RingScenarios.ValueOneToOne(Messages, new YieldingWaitStrategy(RingScenarios.Coalescing));

    [Benchmark(OperationsPerInvoke = Messages)]
    public double Value1P1CPlain() => RingScenarios.ValueOneToOne(Messages, new YieldingWaitStrategy());

    [Benchmark(OperationsPerInvoke = Messages)]
    public double Class1P1C() => RingScenarios.ClassOneToOne(Messages, new YieldingWaitStrategy());

    [Benchmark(OperationsPerInvoke = Messages)]
    public double Batch1P1C() => RingScenarios.BatchOneToOne(Messages, new YieldingWaitStrategy());

    [Benchmark(OperationsPerInvoke = RoundTrips)]
    public double PingPong() => RingScenarios.PingPong(RoundTrips, null);
}
