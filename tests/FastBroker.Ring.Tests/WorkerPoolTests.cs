using System.Runtime.CompilerServices;
using FastBroker.Testing;

namespace FastBroker.Ring.Tests;

public class WorkerPoolTests
{
    private struct CountingWorker(HitCounter hits, int spinEvery) : IValueWorkHandler<LongValue>
    {
        public void OnEvent(ref LongValue data, long sequence)
        {
            hits.Hit(data.Value);
            if (spinEvery > 0 && data.Value % spinEvery == 0)
            {
                Thread.SpinWait(200);
            }
        }
    }

    private sealed class ClassWorker(HitCounter hits) : IWorkHandler<LongEvent>
    {
        public int Started;

        public void OnEvent(LongEvent data, long sequence) => hits.Hit(data.Value);

        public void OnStart() => Interlocked.Increment(ref Started);
    }

    /// <remarks>
    /// A ring of 8 is a hand-off between threads every few events: on a loaded 2-core machine it ran at ~2,400 events
    /// a second with steady progress (62 s for the 150,000, so a fixed 60 s deadline on the producers' end failed it
    /// while nothing was wrong). The wait fails on a stall instead (no event handled for a minute: a hang, a lost
    /// wake-up), and tells how far every party got.
    /// </remarks>
    [Theory]
    [InlineData(ProducerType.Single, 8)]
    [InlineData(ProducerType.Multi, 8)]
    [InlineData(ProducerType.Multi, 1024)]
    public void Every_event_is_handled_by_exactly_one_worker(ProducerType type, int size)
    {
        const int events = 150_000;
        var hits = new HitCounter(events);
        var ring = new ValueRingBuffer<LongValue>(size, type);
        var pool = WorkerPool.Create(ring, [], null, new CountingWorker(hits, 10), new CountingWorker(hits, 10), new CountingWorker(hits, 10));
        var gating = pool.GetWorkerSequences();
        ring.AddGatingSequences(gating);
        pool.Start("test-worker");

        var producerCount = type == ProducerType.Multi ? 2 : 1;
        var published = new long[producerCount];
        var producers = Enumerable.Range(0, producerCount).Select(p => new Thread(() =>
        {
            for (long i = p; i < events; i += producerCount)
            {
                var seq = ring.Next();
                ring[seq].Value = i;
                ring.Publish(seq);
                Volatile.Write(ref published[p], Volatile.Read(ref published[p]) + 1);
            }
        })
        { IsBackground = true, Name = $"test-producer-{p}" }).ToList();
        producers.ForEach(t => t.Start());

        string State() =>
            $"{hits.Total} of {events} handled; published per producer [{string.Join(", ", Enumerable.Range(0, producerCount).Select(i => Volatile.Read(ref published[i])))}], " +
            $"producers alive {producers.Count(t => t.IsAlive)}; cursor {ring.Cursor}; worker sequences " +
            $"[{string.Join(", ", gating[..^1].Select(s => s.Value))}], claim counter {gating[^1].Value}; workers running {pool.IsRunning}";
        Eventually.WhileProgressing(() => hits.Total >= events, () => hits.Total, $"{type}-producer ring of {size}: workers handled every event", State);
        producers.ForEach(t => Eventually.Joined(t));

        Assert.True(pool.DrainAndHalt(TimeSpan.FromSeconds(30)), $"workers drained and stopped: {State()}");
        var (zero, once, more) = hits.Tally(events);
        Assert.Equal((0, events, 0), (zero, once, more));
        Assert.Equal(events, hits.Total);
    }

    [Fact]
    public void Halting_mid_stream_loses_nothing_published_before_the_halt()
    {
        const int capacity = 200_000;
        var hits = new HitCounter(capacity);
        var ring = new ValueRingBuffer<LongValue>(64, ProducerType.Multi);

        // Slow workers: the halt lands while there is a backlog to drain.
        var pool = WorkerPool.Create(ring, [], null, new CountingWorker(hits, 1), new CountingWorker(hits, 1), new CountingWorker(hits, 1));
        ring.AddGatingSequences(pool.GetWorkerSequences());
        pool.Start("halt-worker");

        long publishedBeforeHalt = 0;
        var stop = 0;
        var producer = new Thread(() =>
        {
            for (long i = 0; i < capacity && Volatile.Read(ref stop) == 0; i++)
            {
                if (!ring.TryNext(out var seq))
                {
                    Thread.Yield();
                    i--;
                    continue;
                }

                ring[seq].Value = i;
                ring.Publish(seq);
                Volatile.Write(ref publishedBeforeHalt, i + 1);
            }
        })
        { IsBackground = true, Name = "halt-producer" };
        producer.Start();

        Eventually.True(() => hits.Total > 5_000, "workers got going");

        // Stop the producer first so "published before the halt" is a fixed number, then halt mid-backlog.
        Volatile.Write(ref stop, 1);
        Eventually.Joined(producer);
        var published = Volatile.Read(ref publishedBeforeHalt);
        pool.Halt();
        Assert.True(pool.Join(TimeSpan.FromSeconds(30)), "workers drained and stopped");

        var (zero, once, more) = hits.Tally(published);
        Assert.Equal((0, (int)published, 0), (zero, once, more));
        Assert.False(pool.IsRunning);
    }

    [Fact]
    public void Halting_while_producers_still_publish_drains_everything_readable_at_the_halt()
    {
        const int capacity = 400_000;
        var hits = new HitCounter(capacity);
        var ring = new ValueRingBuffer<LongValue>(256, ProducerType.Single);
        var pool = WorkerPool.Create(ring, [], null, new CountingWorker(hits, 1), new CountingWorker(hits, 1));
        ring.AddGatingSequences(pool.GetWorkerSequences());
        pool.Start("race-worker");

        var halted = 0;
        long cursorAtHalt = -1;
        var producer = new Thread(() =>
        {
            for (long i = 0; i < capacity; i++)
            {
                if (!ring.TryNext(out var seq))
                {
                    if (Volatile.Read(ref halted) != 0)
                    {
                        return; // the halted pool will not free more room
                    }

                    Thread.Yield();
                    i--;
                    continue;
                }

                ring[seq].Value = seq;
                ring.Publish(seq);
            }
        })
        { IsBackground = true, Name = "race-producer" };
        producer.Start();

        Eventually.True(() => hits.Total > 10_000, "workers got going");
        cursorAtHalt = ring.Cursor;
        pool.Halt();
        Volatile.Write(ref halted, 1);
        Assert.True(pool.Join(TimeSpan.FromSeconds(30)));
        Eventually.Joined(producer);

        // Everything published before Halt() was called is handled exactly once; nothing twice.
        var (zero, once, more) = hits.Tally(cursorAtHalt + 1);
        Assert.Equal((0, (int)cursorAtHalt + 1, 0), (zero, once, more));
        Assert.Equal(0, hits.Tally(capacity).More);
    }

    private struct FailsOnceAt(HitCounter hits, long failAt, StrongBox<int> failed) : IValueWorkHandler<LongValue>
    {
        public void OnEvent(ref LongValue data, long sequence)
        {
            if (sequence == failAt && Interlocked.Exchange(ref failed.Value, 1) == 0)
            {
                throw new InvalidOperationException($"fail once at {sequence}");
            }

            hits.Hit(data.Value);
        }
    }

    private static void PublishValues(ValueRingBuffer<LongValue> ring, int count)
    {
        for (var i = 0; i < count; i++)
        {
            var seq = ring.Next();
            ring[seq].Value = seq;
            ring.Publish(seq);
        }
    }

    [Fact]
    public void A_worker_halted_on_its_own_and_run_again_handles_every_event_once_including_the_one_it_had_claimed()
    {
        const int events = 100;
        var hits = new HitCounter(events);
        // Room for every event: publishing never waits on the worker, so a worker that handles nothing fails the
        // deadline below instead of hanging the producer.
        var ring = new ValueRingBuffer<LongValue>(128, ProducerType.Single, new BlockingWaitStrategy());
        var pool = WorkerPool.Create(ring, [], null, new CountingWorker(hits, 0));
        ring.AddGatingSequences(pool.GetWorkerSequences());
        var worker = pool.Workers[0];
        var claimCounter = pool.GetWorkerSequences()[^1];

        // The idle worker claims sequence 0 and waits for it; halting it there must not lose that claim.
        var first = EventProcessors.StartThread(worker, "worker-first-run");
        Eventually.True(() => claimCounter.Value == 0, "the idle worker claimed sequence 0");
        worker.Halt();
        Eventually.Joined(first);

        var second = EventProcessors.StartThread(worker, "worker-second-run");
        try
        {
            PublishValues(ring, events);
            Eventually.True(() => hits.Total >= events, "the restarted worker handled everything", TimeSpan.FromSeconds(15));
        }
        finally
        {
            worker.Halt();
            Eventually.Joined(second);
        }

        Assert.Equal((0, events, 0), hits.Tally(events));
    }

    [Fact]
    public void A_worker_halted_by_a_failure_and_run_again_retries_the_failed_event_and_the_rest_of_its_claim()
    {
        const int events = 40;
        var hits = new HitCounter(events);
        var failed = new StrongBox<int>();
        var ring = new ValueRingBuffer<LongValue>(64, ProducerType.Single, new BlockingWaitStrategy());
        var pool = WorkerPool.Create(ring, [], ExceptionHandlers.Halt<LongValue>(), new FailsOnceAt(hits, 3, failed));
        ring.AddGatingSequences(pool.GetWorkerSequences());
        var worker = pool.Workers[0];

        // Published before the worker starts: it claims a run of slots (0..15 at most) and fails inside it at 3.
        PublishValues(ring, events);
        Eventually.Joined(EventProcessors.StartThread(worker, "worker-fails"));
        Assert.IsType<InvalidOperationException>(worker.Fault);
        Assert.Equal(3, hits.Total);

        var again = EventProcessors.StartThread(worker, "worker-again");
        try
        {
            Eventually.True(() => hits.Total >= events, "the restarted worker handled the rest", TimeSpan.FromSeconds(15));
        }
        finally
        {
            worker.Halt();
            Eventually.Joined(again);
        }

        Assert.Equal((0, events, 0), hits.Tally(events));
    }

    [Fact]
    public void Class_workers_behind_interfaces_work_too()
    {
        const int events = 20_000;
        var hits = new HitCounter(events);
        var ring = RingBuffer<LongEvent>.CreateMultiProducer(() => new LongEvent(), 32);
        var w1 = new ClassWorker(hits);
        var w2 = new ClassWorker(hits);
        var pool = WorkerPool.Create<LongEvent, IWorkHandler<LongEvent>>(ring, [], null, w1, w2);
        ring.AddGatingSequences(pool.GetWorkerSequences());
        pool.Start();
        for (long i = 0; i < events; i++)
        {
            using var scope = ring.PublishEvent();
            scope.Event().Value = i;
        }

        Assert.True(pool.DrainAndHalt(TimeSpan.FromSeconds(30)));
        Assert.Equal((0, events, 0), hits.Tally(events));
        Assert.Equal(1, w1.Started);
        Assert.Equal(1, w2.Started);
    }
}
