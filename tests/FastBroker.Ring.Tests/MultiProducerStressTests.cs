using FastBroker.Testing;

namespace FastBroker.Ring.Tests;

public class MultiProducerStressTests
{
    private const int Producers = 3;

    [Theory]
    [InlineData(4, 5_000)]
    [InlineData(16, 20_000)]
    [InlineData(1024, 100_000)]
    public void Value_ring_consumer_sees_every_event_once_and_each_producer_in_order(int ringSize, int perProducer)
    {
        var ring = new ValueRingBuffer<LongValue>(ringSize, ProducerType.Multi);
        var recorder = new Recorder(Producers);
        var processor = EventProcessors.Create(ring, ring.NewBarrier(), new RecordingValueHandler(recorder));
        ring.AddGatingSequences(processor.Sequence);
        var consumer = EventProcessors.StartThread(processor, "stress-consumer");

        var producers = Enumerable.Range(0, Producers).Select(p => new Thread(() =>
        {
            for (var i = 0; i < perProducer; i++)
            {
                // Mix single claims, batch claims and TryNext so every claim path sees contention.
                if (i % 7 == 0 && i + 2 < perProducer)
                {
                    var hi = ring.Next(3);
                    for (var k = 0; k < 3; k++)
                    {
                        ref var e = ref ring[hi - 2 + k];
                        e.Producer = p;
                        e.Value = i + k;
                    }

                    ring.Publish(hi - 2, hi);
                    i += 2;
                }
                else
                {
                    long seq;
                    if (i % 5 == 0)
                    {
                        while (!ring.TryNext(out seq))
                        {
                            Thread.Yield();
                        }
                    }
                    else
                    {
                        seq = ring.Next();
                    }

                    ref var e = ref ring[seq];
                    e.Producer = p;
                    e.Value = i;
                    ring.Publish(seq);
                }
            }
        })
        { IsBackground = true, Name = $"stress-producer-{p}" }).ToList();

        producers.ForEach(t => t.Start());
        producers.ForEach(t => Eventually.Joined(t));
        Eventually.True(() => recorder.Count == (long)Producers * perProducer || !recorder.Failures.IsEmpty, "consumer saw every event");

        processor.Halt();
        Eventually.Joined(consumer);
        recorder.AssertClean();
        Assert.Equal((long)Producers * perProducer, recorder.Count);
        Assert.Equal((long)Producers * perProducer - 1, recorder.LastSequence);
        Assert.Equal(1, recorder.Shutdowns);
    }

    [Theory]
    [InlineData(4, 5_000)]
    [InlineData(1024, 100_000)]
    public void Class_ring_consumer_sees_every_event_once_and_each_producer_in_order(int ringSize, int perProducer)
    {
        var ring = RingBuffer<LongEvent>.CreateMultiProducer(() => new LongEvent(), ringSize);
        var recorder = new Recorder(Producers);
        var processor = EventProcessors.Create(ring, ring.NewBarrier(), new RecordingClassHandler(recorder));
        ring.AddGatingSequences(processor.Sequence);
        var consumer = EventProcessors.StartThread(processor, "stress-consumer");

        var producers = Enumerable.Range(0, Producers).Select(p => new Thread(() =>
        {
            for (var i = 0; i < perProducer; i++)
            {
                using var scope = ring.PublishEvent();
                scope.Event().Producer = p;
                scope.Event().Value = i;
            }
        })
        { IsBackground = true, Name = $"stress-producer-{p}" }).ToList();

        producers.ForEach(t => t.Start());
        producers.ForEach(t => Eventually.Joined(t));
        Eventually.True(() => recorder.Count == (long)Producers * perProducer || !recorder.Failures.IsEmpty, "consumer saw every event");
        processor.Halt();
        Eventually.Joined(consumer);
        recorder.AssertClean();
        Assert.Equal((long)Producers * perProducer, recorder.Count);
    }

    [Theory]
    [InlineData(8, 20_000)]
    [InlineData(64, 50_000)]
    public void Four_producers_claiming_batches_up_to_the_whole_ring_that_wrap_its_end_are_each_seen_once_in_order(int ringSize, int perProducer)
    {
        const int producerCount = 4;
        var ring = new ValueRingBuffer<LongValue>(ringSize, ProducerType.Multi, new BlockingWaitStrategy());
        var recorder = new Recorder(producerCount);
        var processor = EventProcessors.Create(ring, ring.NewBarrier(), new RecordingValueHandler(recorder));
        ring.AddGatingSequences(processor.Sequence);
        var consumer = EventProcessors.StartThread(processor, "batch-consumer");

        var producers = Enumerable.Range(0, producerCount).Select(p => new Thread(() =>
        {
            // Batch sizes cycle through 1..ringSize (a whole ring included), offset per producer, so most batches
            // straddle the ring's end and claims of every size contend; every other cycle claims with TryNext(n).
            var round = p * 3;
            for (var i = 0; i < perProducer; round++)
            {
                var n = Math.Min(1 + (round % ringSize), perProducer - i);
                long hi;
                if ((round / ringSize) % 2 == 1)
                {
                    while (!ring.TryNext(n, out hi))
                    {
                        Thread.Yield();
                    }
                }
                else
                {
                    hi = ring.Next(n);
                }

                var lo = hi - n + 1;
                for (var s = lo; s <= hi; s++)
                {
                    ref var e = ref ring[s];
                    e.Producer = p;
                    e.Value = i++;
                }

                ring.Publish(lo, hi);
            }
        })
        { IsBackground = true, Name = $"batch-producer-{p}" }).ToList();

        producers.ForEach(t => t.Start());
        producers.ForEach(t => Eventually.Joined(t));
        Eventually.True(() => recorder.Count == (long)producerCount * perProducer || !recorder.Failures.IsEmpty, "consumer saw every event");
        processor.Halt();
        Eventually.Joined(consumer);
        recorder.AssertClean();
        Assert.Equal((long)producerCount * perProducer, recorder.Count);
        Assert.Equal(((long)producerCount * perProducer) - 1, recorder.LastSequence);
    }

    [Fact]
    public void Two_consumers_of_a_tiny_multi_producer_ring_each_see_everything()
    {
        const int perProducer = 5_000;
        var ring = new ValueRingBuffer<LongValue>(4, ProducerType.Multi);
        var r1 = new Recorder(Producers);
        var r2 = new Recorder(Producers);
        var p1 = EventProcessors.Create(ring, ring.NewBarrier(), new RecordingValueHandler(r1));
        var p2 = EventProcessors.Create(ring, ring.NewBarrier(), new RecordingValueHandler(r2));
        ring.AddGatingSequences(p1.Sequence, p2.Sequence);
        var t1 = EventProcessors.StartThread(p1, "c1");
        var t2 = EventProcessors.StartThread(p2, "c2");

        var producers = Enumerable.Range(0, Producers).Select(p => new Thread(() =>
        {
            for (var i = 0; i < perProducer; i++)
            {
                var seq = ring.Next();
                ring[seq].Producer = p;
                ring[seq].Value = i;
                ring.Publish(seq);
            }
        })
        { IsBackground = true }).ToList();
        producers.ForEach(t => t.Start());
        producers.ForEach(t => Eventually.Joined(t));
        Eventually.True(() => r1.Count == Producers * perProducer && r2.Count == Producers * perProducer, "both consumers done");
        p1.Halt();
        p2.Halt();
        Eventually.Joined(t1);
        Eventually.Joined(t2);
        r1.AssertClean();
        r2.AssertClean();
    }
}
