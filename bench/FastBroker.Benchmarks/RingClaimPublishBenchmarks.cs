using BenchmarkDotNet.Attributes;
using FastBroker.Bench.Ring;
using FastBroker.Ring;

namespace FastBroker.Benchmarks;

/// <summary>
/// Single-threaded cost of the ring's own operations with no cross-core traffic: claim + write + publish,
/// then a poll that consumes it. Steady state allocates nothing.
/// </summary>
[MemoryDiagnoser]
public class RingClaimPublishBenchmarks
{
    private const int Operations = 1024;
    private ValueRingBuffer<RingPayload> _ring = null!;
    private ValueEventPoller<RingPayload> _poller = null!;
    private SumPollHandler _handler;

    [GlobalSetup]
    public void Setup()
    {
        _ring = new ValueRingBuffer<RingPayload>(RingScenarios.RingSize, ProducerType.Single, new YieldingWaitStrategy());
        _poller = _ring.NewPoller();
    }

    [Benchmark(OperationsPerInvoke = Operations)]
    public long ClaimPublishPoll()
    {
        for (var i = 0; i < Operations; i++)
        {
            var seq = _ring.Next();
            _ring[seq].Value = i;
            _ring.Publish(seq);
            _poller.Poll(ref _handler);
        }

        return _handler.Sum;
    }

    [Benchmark(OperationsPerInvoke = Operations)]
    public long BatchClaimPublishPoll()
    {
        for (var i = 0; i < Operations; i += 64)
        {
            var hi = _ring.Next(64);
            for (var s = hi - 63; s <= hi; s++)
            {
                _ring[s].Value = s;
            }

            _ring.Publish(hi - 63, hi);
            _poller.Poll(ref _handler);
        }

        return _handler.Sum;
    }

    private struct SumPollHandler : IValueEventPollHandler<RingPayload>
    {
        public long Sum;

        public bool OnEvent(ref RingPayload data, long sequence, bool endOfBatch)
        {
            Sum += data.Value;
            return true;
        }
    }
}
