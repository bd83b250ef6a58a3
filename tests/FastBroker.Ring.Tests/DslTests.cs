using System.Collections.Concurrent;
using FastBroker.Ring.Dsl;
using FastBroker.Testing;

namespace FastBroker.Ring.Tests;

public class DslTests
{
    private struct Stamp(long bit, ConcurrentDictionary<string, byte> threadNames) : IEventHandler<LongEvent>
    {
        public void OnEvent(LongEvent data, long sequence, bool endOfBatch) => Interlocked.Or(ref data.Stamp, bit);

        public void OnBatchStart(long batchSize)
        {
        }

        public void OnStart() => threadNames.TryAdd(Thread.CurrentThread.Name ?? "", 0);
    }

    private struct Check(long expected, Recorder recorder) : IEventHandler<LongEvent>
    {
        public void OnEvent(LongEvent data, long sequence, bool endOfBatch)
        {
            if ((Interlocked.Read(ref data.Stamp) & expected) != expected)
            {
                recorder.Fail($"sequence {sequence}: stamp {data.Stamp:x}, expected {expected:x}");
            }

            recorder.Saw(0, data.Value, sequence);
        }

        public void OnBatchStart(long batchSize)
        {
        }
    }

    private struct Work(HitCounter hits, long required, Recorder recorder) : IWorkHandler<LongEvent>
    {
        public void OnEvent(LongEvent data, long sequence)
        {
            if ((Interlocked.Read(ref data.Stamp) & required) != required)
            {
                recorder.Fail($"worker ran on {sequence} before its upstream");
            }

            hits.Hit(data.Value);
            Interlocked.Or(ref data.Stamp, 4);
        }
    }

    private static void PublishSequence(RingBuffer<LongEvent> ring, int count)
    {
        for (var i = 0; i < count; i++)
        {
            using var scope = ring.PublishEvent();
            var e = scope.Event();
            e.Value = i;
            e.Stamp = 0;
        }
    }

    [Fact]
    public void HandleEventsWith_then_orders_stages_and_names_threads()
    {
        const int events = 50_000;
        var names = new ConcurrentDictionary<string, byte>();
        var recorder = new Recorder();
        var hits = new HitCounter(events);
        using var d = new Disruptor<LongEvent>(() => new LongEvent(), 64, ProducerType.Multi, name: "dsl");
        d.HandleEventsWith(new Stamp(1, names), new Stamp(2, names))
            .ThenHandleEventsWithWorkerPool(new Work(hits, 3, recorder), new Work(hits, 3, recorder))
            .Then(new Check(7, recorder));
        var ring = d.Start();

        PublishSequence(ring, events);
        Eventually.True(() => recorder.Count == events || !recorder.Failures.IsEmpty, "last stage saw everything");
        Assert.True(d.Halt());
        recorder.AssertClean();
        Assert.Equal((0, events, 0), hits.Tally(events));
        Assert.Contains(names.Keys, n => n.StartsWith("dsl-0.0", StringComparison.Ordinal));
        Assert.Contains(names.Keys, n => n.StartsWith("dsl-0.1", StringComparison.Ordinal));
        Assert.Empty(d.Faults);
    }

    [Fact]
    public void Only_the_end_of_each_chain_gates_the_ring()
    {
        using var d = new Disruptor<LongEvent>(() => new LongEvent(), 8);
        var names = new ConcurrentDictionary<string, byte>();
        var first = d.HandleEventsWith(new Stamp(1, names));
        var last = first.Then(new Stamp(2, names));
        var ring = d.RingBuffer;

        ring.Publish(0, ring.Next(6));

        // Downstream at 5 and upstream "behind" at 1 (not really possible, but telling): if the upstream one
        // gated the ring the minimum would be 1. Only the end of the chain gates; the chain itself orders the rest.
        first.Sequences[0].SetValue(1);
        last.Sequences[0].SetValue(5);
        Assert.Equal(5, ring.GetMinimumGatingSequence());
        first.Sequences[0].SetValue(5);
        Assert.Throws<InvalidOperationException>(() =>
        {
            d.Start();
            d.HandleEventsWith(new Stamp(4, names));
        });
    }

    private sealed class ClassHandler(Recorder recorder) : IEventHandler<LongEvent>
    {
        public void OnEvent(LongEvent data, long sequence, bool endOfBatch) => recorder.Saw(0, data.Value, sequence);

        public void OnBatchStart(long batchSize)
        {
        }
    }

    [Fact]
    public void Class_handlers_and_shutdown_drain_everything_published()
    {
        const int events = 30_000;
        var r1 = new Recorder();
        var r2 = new Recorder();
        var d = new Disruptor<LongEvent>(() => new LongEvent(), 256, ProducerType.Single);
        d.HandleEventsWith(new ClassHandler(r1)).Then(new ClassHandler(r2));
        var ring = d.Start();
        PublishSequence(ring, events);
        Assert.True(d.Shutdown(TimeSpan.FromSeconds(30)));
        Assert.Equal(events, r1.Count);
        Assert.Equal(events, r2.Count);
        d.Dispose();
        r1.AssertClean();
        r2.AssertClean();
    }

    private struct ValueAdd(long add) : IValueEventHandler<LongValue>
    {
        public void OnEvent(ref LongValue data, long sequence, bool endOfBatch) => data.Stamp += add;

        public void OnBatchStart(long batchSize)
        {
        }
    }

    private struct ValueCheck(Recorder recorder) : IValueEventHandler<LongValue>
    {
        public void OnEvent(ref LongValue data, long sequence, bool endOfBatch)
        {
            if (data.Stamp != 1)
            {
                recorder.Fail($"{sequence}: stamp {data.Stamp}");
            }

            recorder.Saw(0, data.Value, sequence);
        }

        public void OnBatchStart(long batchSize)
        {
        }
    }

    private struct ValueWork(HitCounter hits) : IValueWorkHandler<LongValue>
    {
        public void OnEvent(ref LongValue data, long sequence) => hits.Hit(data.Value);
    }

    [Fact]
    public void Value_disruptor_wires_stages_and_pools_and_halts()
    {
        const int events = 50_000;
        var recorder = new Recorder();
        var hits = new HitCounter(events);
        using var d = new ValueDisruptor<LongValue>(128, ProducerType.Single);
        var first = d.HandleEventsWith(new ValueAdd(1));
        first.Then(new ValueCheck(recorder));
        first.ThenHandleEventsWithWorkerPool(new ValueWork(hits), new ValueWork(hits), new ValueWork(hits));
        var ring = d.Start();
        for (var i = 0; i < events; i++)
        {
            using var s = ring.PublishEvent();
            ref var e = ref s.Event();
            e.Value = i;
            e.Stamp = 0;
        }

        Assert.True(d.Shutdown(TimeSpan.FromSeconds(30)));
        recorder.AssertClean();
        Assert.Equal(events, recorder.Count);
        Assert.Equal((0, events, 0), hits.Tally(events));
    }

    [Fact]
    public void Dispose_without_start_and_halt_twice_are_harmless()
    {
        var d = new ValueDisruptor<LongValue>(8);
        d.HandleEventsWith(new ValueAdd(1));
        d.Dispose();

        var d2 = new ValueDisruptor<LongValue>(8);
        d2.HandleEventsWith(new ValueAdd(1));
        d2.Start();
        Assert.True(d2.Halt());
        Assert.True(d2.Halt());
        d2.Dispose();
    }
}
