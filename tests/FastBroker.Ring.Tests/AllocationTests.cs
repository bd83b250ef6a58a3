using FastBroker.Testing;

namespace FastBroker.Ring.Tests;

public class AllocationTests
{
    private const long WarmUp = 100_000;
    private const long Measured = 1_000_000;
    private const long Bound = 1024;

    /// <summary>Reads the consumer thread's allocation counter at the first and last measured event.</summary>
    private sealed class ConsumerAllocations
    {
        public long AtStart = -1;
        public long AtEnd = -1;
        public long Sum;

        public void At(long sequence)
        {
            if (sequence == WarmUp)
            {
                AtStart = GC.GetAllocatedBytesForCurrentThread();
            }
            else if (sequence == WarmUp + Measured)
            {
                Volatile.Write(ref AtEnd, GC.GetAllocatedBytesForCurrentThread());
            }
        }
    }

    private struct ValueHandler(ConsumerAllocations allocations) : IValueEventHandler<LongValue>
    {
        private long _sum;

        public void OnEvent(ref LongValue data, long sequence, bool endOfBatch)
        {
            _sum += data.Value;
            allocations.At(sequence);
            if (endOfBatch)
            {
                allocations.Sum = _sum;
            }
        }

        public void OnBatchStart(long batchSize)
        {
        }
    }

    private struct ClassHandler(ConsumerAllocations allocations) : IEventHandler<LongEvent>
    {
        private long _sum;

        public void OnEvent(LongEvent data, long sequence, bool endOfBatch)
        {
            _sum += data.Value;
            allocations.At(sequence);
        }

        public void OnBatchStart(long batchSize)
        {
        }
    }

    [Theory]
    [InlineData(ProducerType.Single)]
    [InlineData(ProducerType.Multi)]
    public void Value_ring_claim_publish_consume_allocates_nothing_per_event_on_either_thread(ProducerType type)
    {
        var ring = new ValueRingBuffer<LongValue>(1024, type);
        var allocations = new ConsumerAllocations();
        var processor = EventProcessors.Create(ring, ring.NewBarrier(), new ValueHandler(allocations));
        ring.AddGatingSequences(processor.Sequence);
        var thread = EventProcessors.StartThread(processor, "alloc-consumer");

        var producerBytes = Publish(WarmUp, Measured, n =>
        {
            for (long i = 0; i < n; i++)
            {
                var seq = ring.Next();
                ring[seq].Value = i;
                ring.Publish(seq);
            }
        });

        Eventually.True(() => Volatile.Read(ref allocations.AtEnd) >= 0, "consumer reached the last measured event");
        processor.Halt();
        Eventually.Joined(thread);
        Assert.True(producerBytes < Bound, $"producer allocated {producerBytes} bytes over {Measured} events");
        var consumerBytes = allocations.AtEnd - allocations.AtStart;
        Assert.True(consumerBytes < Bound, $"consumer allocated {consumerBytes} bytes over {Measured} events");
    }

    [Fact]
    public void Class_ring_with_batch_claims_allocates_nothing_per_event_on_either_thread()
    {
        var ring = RingBuffer<LongEvent>.CreateSingleProducer(() => new LongEvent(), 1024);
        var allocations = new ConsumerAllocations();
        var processor = EventProcessors.Create(ring, ring.NewBarrier(), new ClassHandler(allocations));
        ring.AddGatingSequences(processor.Sequence);
        var thread = EventProcessors.StartThread(processor, "alloc-consumer");

        var producerBytes = Publish(WarmUp, Measured, n =>
        {
            for (long i = 0; i < n; i += 16)
            {
                var hi = ring.Next(16);
                for (var s = hi - 15; s <= hi; s++)
                {
                    ring[s].Value = s;
                }

                ring.Publish(hi - 15, hi);
            }
        });

        // One extra batch so the consumer's "last measured" sequence is always published.
        ring.Publish(ring.Next(16));
        Eventually.True(() => Volatile.Read(ref allocations.AtEnd) >= 0, "consumer reached the last measured event");
        processor.Halt();
        Eventually.Joined(thread);
        Assert.True(producerBytes < Bound, $"producer allocated {producerBytes} bytes over {Measured} events");
        var consumerBytes = allocations.AtEnd - allocations.AtStart;
        Assert.True(consumerBytes < Bound, $"consumer allocated {consumerBytes} bytes over {Measured} events");
    }

    private struct PollHandler : IValueEventPollHandler<LongValue>
    {
        public long Sum;

        public bool OnEvent(ref LongValue data, long sequence, bool endOfBatch)
        {
            Sum += data.Value;
            return true;
        }
    }

    [Fact]
    public void Poller_and_publish_scope_allocate_nothing()
    {
        var ring = new ValueRingBuffer<LongValue>(1024);
        var poller = ring.NewPoller();
        var handler = default(PollHandler);
        for (var i = 0; i < 1000; i++)
        {
            using (var s = ring.PublishEvent())
            {
                s.Event().Value = 1;
            }

            poller.Poll(ref handler);
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < Measured; i++)
        {
            using (var s = ring.PublishEvent())
            {
                s.Event().Value = 1;
            }

            poller.Poll(ref handler);
        }

        var bytes = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(bytes < Bound, $"allocated {bytes} bytes");
        Assert.Equal(1000 + Measured, handler.Sum);
    }

    /// <summary>Publishes <paramref name="warmUp"/> events, then measures the producer thread's allocations over <paramref name="measured"/> (+1) more.</summary>
    private static long Publish(long warmUp, long measured, Action<long> publish)
    {
        publish(warmUp);
        var before = GC.GetAllocatedBytesForCurrentThread();
        publish(measured + 1);
        return GC.GetAllocatedBytesForCurrentThread() - before;
    }
}
