using System.Diagnostics;
using System.Runtime.CompilerServices;
using FastBroker.Bench.Infrastructure;
using FastBroker.Ring;

namespace FastBroker.Bench.Ring;

/// <summary>
/// The ring side of <c>fastbroker bench ring</c>, shared with the BenchmarkDotNet micro-benchmarks. Each method
/// builds its ring and consumer threads, then times publishing <c>messages</c> events until the last consumer
/// has handled the last one, and returns the elapsed seconds (set-up and thread start are not timed).
/// </summary>
public static class RingScenarios
{
    /// <summary>Ring slots: 64 Ki, as the channel baselines' capacity.</summary>
    public const int RingSize = 1 << 16;

    /// <summary>
    /// The throughput setting of <c>value-1p1c</c>: a batch under 256 events is held for 1 µs. On this VM a
    /// cross-core cache-line transfer takes several hundred ns in its slow phases; a 0.5 µs hold left batches at
    /// ~30 events (no gain), 1 µs let them grow to ~256 (perf-reports/ring.md).
    /// </summary>
    public static readonly BatchCoalescing Coalescing = new(256, TimeSpan.FromMicroseconds(1));

    /// <summary>Events per claim in <c>batch-1p1c</c>.</summary>
    public const int BatchSize = 64;

    /// <summary>1 producer (the calling thread), 1 consumer, struct entries written in place.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static double ValueOneToOne(long messages, IWaitStrategy waitStrategy)
    {
        var ring = new ValueRingBuffer<RingPayload>(RingSize, ProducerType.Single, waitStrategy);
        var processor = EventProcessors.Create(ring, ring.NewBarrier(), default(SumHandler));
        ring.AddGatingSequences(processor.Sequence);
        using var consumer = new ConsumerThreads(processor);

        var start = Stopwatch.GetTimestamp();
        for (long i = 0; i < messages; i++)
        {
            var seq = ring.Next();
            ring[seq].Value = i;
            ring.Publish(seq);
        }

        WaitFor(processor.Sequence, messages - 1);
        return Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    /// <summary>1 producer, 1 consumer, pre-allocated class entries.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static double ClassOneToOne(long messages, IWaitStrategy waitStrategy)
    {
        var ring = new RingBuffer<RingEntry>(static () => new RingEntry(), RingSize, ProducerType.Single, waitStrategy);
        var processor = EventProcessors.Create(ring, ring.NewBarrier(), default(ClassSumHandler));
        ring.AddGatingSequences(processor.Sequence);
        using var consumer = new ConsumerThreads(processor);

        var start = Stopwatch.GetTimestamp();
        for (long i = 0; i < messages; i++)
        {
            var seq = ring.Next();
            ring[seq].Value = i;
            ring.Publish(seq);
        }

        WaitFor(processor.Sequence, messages - 1);
        return Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    /// <summary>1 producer claiming and publishing <see cref="BatchSize"/> slots at a time, 1 consumer, struct entries.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static double BatchOneToOne(long messages, IWaitStrategy waitStrategy)
    {
        var ring = new ValueRingBuffer<RingPayload>(RingSize, ProducerType.Single, waitStrategy);
        var processor = EventProcessors.Create(ring, ring.NewBarrier(), default(SumHandler));
        ring.AddGatingSequences(processor.Sequence);
        using var consumer = new ConsumerThreads(processor);

        var batches = (messages + BatchSize - 1) / BatchSize;
        var start = Stopwatch.GetTimestamp();
        for (long b = 0; b < batches; b++)
        {
            var hi = ring.Next(BatchSize);
            var lo = hi - (BatchSize - 1);
            for (var seq = lo; seq <= hi; seq++)
            {
                ring[seq].Value = seq;
            }

            ring.Publish(lo, hi);
        }

        WaitFor(processor.Sequence, (batches * BatchSize) - 1);
        return Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    /// <summary>3 producer threads (messages/3 each) on a multi-producer ring, 1 consumer.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static double ThreeToOne(long messages, IWaitStrategy waitStrategy)
    {
        const int producers = 3;
        var perProducer = messages / producers;
        var ring = new ValueRingBuffer<RingPayload>(RingSize, ProducerType.Multi, waitStrategy);
        var processor = EventProcessors.Create(ring, ring.NewBarrier(), default(SumHandler));
        ring.AddGatingSequences(processor.Sequence);
        using var consumer = new ConsumerThreads(processor);

        using var go = new ManualResetEventSlim(false);
        var threads = new Thread[producers];
        for (var p = 0; p < producers; p++)
        {
            threads[p] = new Thread(() =>
            {
                go.Wait();
                for (long i = 0; i < perProducer; i++)
                {
                    var seq = ring.Next();
                    ring[seq].Value = i;
                    ring.Publish(seq);
                }
            })
            { IsBackground = true, Name = $"bench-producer-{p}" };
            threads[p].Start();
        }

        var start = Stopwatch.GetTimestamp();
        go.Set();
        WaitFor(processor.Sequence, (perProducer * producers) - 1);
        var elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
        foreach (var t in threads)
        {
            t.Join();
        }

        return elapsed;
    }

    /// <summary>1 producer, 3 consumers that each see every event.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static double OneToThreeFanOut(long messages, IWaitStrategy waitStrategy)
    {
        var ring = new ValueRingBuffer<RingPayload>(RingSize, ProducerType.Single, waitStrategy);
        var processors = new IEventProcessor[3];
        for (var i = 0; i < processors.Length; i++)
        {
            processors[i] = EventProcessors.Create(ring, ring.NewBarrier(), default(SumHandler));
            ring.AddGatingSequences(processors[i].Sequence);
        }

        using var consumers = new ConsumerThreads(processors);
        var start = Stopwatch.GetTimestamp();
        for (long i = 0; i < messages; i++)
        {
            var seq = ring.Next();
            ring[seq].Value = i;
            ring.Publish(seq);
        }

        foreach (var p in processors)
        {
            WaitFor(p.Sequence, messages - 1);
        }

        return Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    /// <summary>1 producer, a pool of 3 workers (each event handled by one of them).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static double OneToThreeWorkers(long messages, IWaitStrategy waitStrategy)
    {
        var ring = new ValueRingBuffer<RingPayload>(RingSize, ProducerType.Single, waitStrategy);
        var pool = WorkerPool.Create(ring, [], null, default(SumWorker), default(SumWorker), default(SumWorker));
        ring.AddGatingSequences(pool.GetWorkerSequences());
        using var consumers = new ConsumerThreads([.. pool.Workers]);

        var start = Stopwatch.GetTimestamp();
        for (long i = 0; i < messages; i++)
        {
            var seq = ring.Next();
            ring[seq].Value = i;
            ring.Publish(seq);
        }

        // A worker moves its sequence past an event when it claims its next one, so once every worker's sequence
        // is at the last event, every event has been handled.
        foreach (var s in pool.GetWorkerSequences())
        {
            WaitFor(s, messages - 1);
        }

        var elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
        pool.Halt();
        return elapsed;
    }

    /// <summary>
    /// Round trips between the calling thread and an echo thread over two single-producer rings with busy-spin
    /// waits; each round trip's time goes into <paramref name="histogram"/> (ns).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static double PingPong(int roundTrips, LogLinearHistogram? histogram)
    {
        var spin = new BusySpinWaitStrategy();
        var ping = new ValueRingBuffer<RingPayload>(1024, ProducerType.Single, spin);
        var pong = new ValueRingBuffer<RingPayload>(1024, ProducerType.Single, spin);
        var echo = EventProcessors.Create(ping, ping.NewBarrier(), new EchoHandler(pong));
        ping.AddGatingSequences(echo.Sequence);
        var poller = pong.NewPoller();
        using var echoThread = new ConsumerThreads(echo);

        var receiver = default(PongReceiver);
        var nsPerTick = 1e9 / Stopwatch.Frequency;
        var start = Stopwatch.GetTimestamp();
        for (var i = 0; i < roundTrips; i++)
        {
            var t0 = Stopwatch.GetTimestamp();
            var seq = ping.Next();
            ref var e = ref ping[seq];
            e.Value = i;
            e.Timestamp = t0;
            ping.Publish(seq);

            receiver.Received = false;
            while (!receiver.Received)
            {
                poller.Poll(ref receiver);
            }

            histogram?.Record((long)((Stopwatch.GetTimestamp() - t0) * nsPerTick));
        }

        return Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    /// <summary>Waits (spin, then yield) until <paramref name="sequence"/> reaches <paramref name="value"/>.</summary>
    private static void WaitFor(Sequence sequence, long value)
    {
        var spinner = default(SpinWait);
        while (sequence.Value < value)
        {
            spinner.SpinOnce(sleep1Threshold: -1);
        }
    }

    private struct SumHandler : IValueEventHandler<RingPayload>
    {
        private long _sum;

        public void OnEvent(ref RingPayload data, long sequence, bool endOfBatch) => _sum += data.Value;

        public readonly void OnBatchStart(long batchSize)
        {
        }
    }

    private struct ClassSumHandler : IEventHandler<RingEntry>
    {
        private long _sum;

        public void OnEvent(RingEntry data, long sequence, bool endOfBatch) => _sum += data.Value;

        public readonly void OnBatchStart(long batchSize)
        {
        }
    }

    private struct SumWorker : IValueWorkHandler<RingPayload>
    {
        private long _sum;

        public void OnEvent(ref RingPayload data, long sequence) => _sum += data.Value;
    }

    private readonly struct EchoHandler(ValueRingBuffer<RingPayload> pong) : IValueEventHandler<RingPayload>
    {
        public void OnEvent(ref RingPayload data, long sequence, bool endOfBatch)
        {
            var seq = pong.Next();
            pong[seq] = data;
            pong.Publish(seq);
        }

        public void OnBatchStart(long batchSize)
        {
        }
    }

    private struct PongReceiver : IValueEventPollHandler<RingPayload>
    {
        public bool Received;

        public bool OnEvent(ref RingPayload data, long sequence, bool endOfBatch)
        {
            Received = true;
            return true;
        }
    }

    /// <summary>Runs processors on named threads for one scenario run, halting and joining them on dispose.</summary>
    private sealed class ConsumerThreads : IDisposable
    {
        private readonly IEventProcessor[] _processors;
        private readonly Thread[] _threads;

        public ConsumerThreads(params IEventProcessor[] processors)
        {
            _processors = processors;
            _threads = new Thread[processors.Length];
            for (var i = 0; i < processors.Length; i++)
            {
                _threads[i] = EventProcessors.StartThread(processors[i], $"bench-consumer-{i}");
            }

            var spinner = default(SpinWait);
            while (!processors.All(p => p.IsRunning))
            {
                spinner.SpinOnce();
            }
        }

        public void Dispose()
        {
            foreach (var p in _processors)
            {
                p.Halt();
            }

            foreach (var t in _threads)
            {
                t.Join();
            }
        }
    }
}
