using System.Runtime.CompilerServices;
using FastBroker.Testing;

namespace FastBroker.Ring.Tests;

public class GatingTests
{
    /// <summary>Checks that each entry still holds what was published at its sequence, and slows down now and then.</summary>
    private struct SlowCheckingHandler(Recorder recorder, int slowEvery) : IValueEventHandler<LongValue>
    {
        public void OnEvent(ref LongValue data, long sequence, bool endOfBatch)
        {
            if (data.Value != sequence)
            {
                recorder.Fail($"slot of sequence {sequence} holds {data.Value}: overwritten before it was consumed");
            }

            if (sequence % slowEvery == 0)
            {
                // Simulates a slow consumer: the producer must wait, not overwrite (sleep is load, not synchronisation).
                Thread.Sleep(1); // load, not synchronisation: the slow consumer this test needs
            }

            // Re-read after the pause: a lapping producer would have changed it by now.
            if (Volatile.Read(ref data.Value) != sequence)
            {
                recorder.Fail($"slot of sequence {sequence} changed while being consumed");
            }

            recorder.Saw(0, sequence, sequence);
        }

        public void OnBatchStart(long batchSize)
        {
        }
    }

    [Theory]
    [InlineData(ProducerType.Single, 4)]
    [InlineData(ProducerType.Multi, 4)]
    [InlineData(ProducerType.Single, 64)]
    public void Producer_never_overwrites_an_entry_a_slow_consumer_has_not_processed(ProducerType type, int size)
    {
        const int events = 20_000;
        var ring = new ValueRingBuffer<LongValue>(size, type);
        var recorder = new Recorder();
        var processor = EventProcessors.Create(ring, ring.NewBarrier(), new SlowCheckingHandler(recorder, 997));
        ring.AddGatingSequences(processor.Sequence);
        var thread = EventProcessors.StartThread(processor, "slow-consumer");

        for (long i = 0; i < events; i++)
        {
            var seq = ring.Next();
            ring[seq].Value = seq;
            ring.Publish(seq);

            // The invariant from the producer's side: never more than a ring ahead of the consumer.
            var lag = ring.Cursor - processor.Sequence.Value;
            if (lag > size)
            {
                recorder.Fail($"producer {lag} ahead of the consumer on a ring of {size}");
            }
        }

        Eventually.True(() => recorder.Count == events || !recorder.Failures.IsEmpty, "consumer caught up");
        processor.Halt();
        Eventually.Joined(thread);
        recorder.AssertClean();
        Assert.Equal(events, recorder.Count);
    }

    /// <summary>Checks that it reads a contiguous run of sequences, each slot holding its own sequence, and slows down now and then.</summary>
    private struct ContiguousCheckingHandler(Recorder recorder, StrongBox<long> first) : IValueEventHandler<LongValue>
    {
        private long _expected;

        public void OnEvent(ref LongValue data, long sequence, bool endOfBatch)
        {
            if (Volatile.Read(ref first.Value) == long.MinValue)
            {
                Volatile.Write(ref first.Value, sequence);
                _expected = sequence;
            }

            if (sequence != _expected)
            {
                recorder.Fail($"expected sequence {_expected}, got {sequence}");
            }

            _expected = sequence + 1;
            if (data.Value != sequence)
            {
                recorder.Fail($"slot of sequence {sequence} holds {data.Value}: overwritten before it was consumed");
            }

            if (sequence % 97 == 0)
            {
                Thread.Sleep(1); // load, not synchronisation: a consumer slower than the producer
                if (Volatile.Read(ref data.Value) != sequence)
                {
                    recorder.Fail($"slot of sequence {sequence} changed while being consumed");
                }
            }

            recorder.Saw(0, recorder.Count, sequence);
        }

        public void OnBatchStart(long batchSize)
        {
        }
    }

    [Theory]
    [InlineData(ProducerType.Single)]
    [InlineData(ProducerType.Multi)]
    public void A_consumer_added_while_an_ungated_producer_runs_starts_at_the_cursor_and_is_never_lapped(ProducerType type)
    {
        const int events = 60_000;
        const int size = 16;
        var ring = new ValueRingBuffer<LongValue>(size, type, new BlockingWaitStrategy());
        var stop = 0;
        var producer = new Thread(() =>
        {
            for (var i = 0; i < events && Volatile.Read(ref stop) == 0; i++)
            {
                var seq = ring.Next();
                ring[seq].Value = seq;
                ring.Publish(seq);
            }
        })
        { IsBackground = true, Name = "ungated-producer" };
        producer.Start();

        // Nothing gates the ring yet: the producer laps it freely until the consumer is added.
        Eventually.True(() => ring.Cursor >= 4 * size || !producer.IsAlive, "producer lapped the ring");
        var recorder = new Recorder();
        var first = new StrongBox<long>(long.MinValue);
        var processor = EventProcessors.Create(ring, ring.NewBarrier(), new ContiguousCheckingHandler(recorder, first));
        var cursorBefore = ring.Cursor;
        ring.AddGatingSequences(processor.Sequence);
        var joinedAt = processor.Sequence.Value;
        var consumer = EventProcessors.StartThread(processor, "late-consumer");
        try
        {
            Assert.True(joinedAt >= cursorBefore, $"joined at {joinedAt}, behind the cursor {cursorBefore} seen before the add");
            Eventually.Joined(producer);
            var last = ring.Cursor;
            Eventually.True(() => processor.Sequence.Value == last || !recorder.Failures.IsEmpty, "late consumer caught up");
        }
        finally
        {
            Volatile.Write(ref stop, 1);
            processor.Halt();
            Eventually.Joined(consumer);
        }

        recorder.AssertClean();
        Assert.True(joinedAt == events - 1 || Volatile.Read(ref first.Value) == joinedAt + 1, $"first read {first.Value}, joined at {joinedAt}");
    }

    private struct StampingHandler(long stamp) : IEventHandler<LongEvent>
    {
        // a and b stamp the same entry concurrently: the add must be atomic (the ring orders stages, not siblings).
        public void OnEvent(LongEvent data, long sequence, bool endOfBatch) => Interlocked.Add(ref data.Stamp, stamp);

        public void OnBatchStart(long batchSize)
        {
        }
    }

    private struct StampCheckingHandler(Recorder recorder, long expected) : IEventHandler<LongEvent>
    {
        public void OnEvent(LongEvent data, long sequence, bool endOfBatch)
        {
            var stamp = Volatile.Read(ref data.Stamp);
            if (stamp != expected)
            {
                recorder.Fail($"sequence {sequence}: stamp {stamp}, expected {expected}: ran before its upstream stage");
            }

            data.Stamp = 0;
            recorder.Saw(0, data.Value, sequence);
        }

        public void OnBatchStart(long batchSize)
        {
        }
    }

    [Fact]
    public void A_dependent_stage_never_reads_an_entry_before_every_upstream_consumer_finished_it()
    {
        const int events = 100_000;
        var ring = RingBuffer<LongEvent>.CreateSingleProducer(() => new LongEvent(), 16);
        var a = EventProcessors.Create(ring, ring.NewBarrier(), new StampingHandler(1));
        var b = EventProcessors.Create(ring, ring.NewBarrier(), new StampingHandler(2));
        var recorder = new Recorder();
        var c = EventProcessors.Create(ring, ring.NewBarrier(a.Sequence, b.Sequence), new StampCheckingHandler(recorder, 3));
        ring.AddGatingSequences(c.Sequence);
        var threads = new[] { EventProcessors.StartThread(a, "a"), EventProcessors.StartThread(b, "b"), EventProcessors.StartThread(c, "c") };

        for (long i = 0; i < events; i++)
        {
            var seq = ring.Next();
            ring[seq].Value = i;
            ring.Publish(seq);
        }

        Eventually.True(() => recorder.Count == events || !recorder.Failures.IsEmpty, "last stage saw everything");
        a.Halt();
        b.Halt();
        c.Halt();
        Array.ForEach(threads, t => Eventually.Joined(t));
        recorder.AssertClean();
    }

    private struct GateHandler(ManualResetEventSlim gate) : IValueEventHandler<LongValue>
    {
        public void OnEvent(ref LongValue data, long sequence, bool endOfBatch) => gate.Wait();

        public void OnBatchStart(long batchSize)
        {
        }
    }

    [Fact]
    public void TryNext_reports_a_full_ring_while_the_consumer_is_stuck_and_recovers_after()
    {
        using var gate = new ManualResetEventSlim(false);
        var ring = new ValueRingBuffer<LongValue>(8);
        var processor = EventProcessors.Create(ring, ring.NewBarrier(), new GateHandler(gate));
        ring.AddGatingSequences(processor.Sequence);
        var thread = EventProcessors.StartThread(processor, "stuck-consumer");

        var published = 0;
        while (ring.TryNext(out var seq))
        {
            ring.Publish(seq);
            published++;
            Assert.True(published <= 8, "claimed more than a ring's worth while the consumer was stuck");
        }

        Assert.Equal(8, published);
        gate.Set();
        Eventually.True(() => ring.TryNext(out var s) && Publish(ring, s), "room again once the consumer moved");
        processor.Halt();
        Eventually.Joined(thread);
    }

    private static bool Publish(ValueRingBuffer<LongValue> ring, long seq)
    {
        ring.Publish(seq);
        return true;
    }
}
