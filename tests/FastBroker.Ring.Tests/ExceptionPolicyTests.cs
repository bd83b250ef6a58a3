using System.Collections.Concurrent;
using FastBroker.Ring.Dsl;
using FastBroker.Testing;

namespace FastBroker.Ring.Tests;

public class ExceptionPolicyTests
{
    private struct FailsAt(long failAt, Recorder recorder) : IValueEventHandler<LongValue>
    {
        public void OnEvent(ref LongValue data, long sequence, bool endOfBatch)
        {
            if (sequence == failAt)
            {
                throw new InvalidOperationException($"fail at {sequence}");
            }

            recorder.Saw(0, sequence, sequence);
        }

        public void OnBatchStart(long batchSize)
        {
        }

        public void OnShutdown() => Interlocked.Increment(ref recorder.Shutdowns);
    }

    [Fact]
    public void Default_policy_logs_and_halts_the_processor_and_keeps_the_fault()
    {
        var ring = new ValueRingBuffer<LongValue>(64);
        var recorder = new Recorder();
        var log = new ConcurrentQueue<string>();
        var processor = EventProcessors.Create(ring, ring.NewBarrier(), new FailsAt(5, recorder), ExceptionHandlers.LogAndHalt<LongValue>(log.Enqueue));
        ring.AddGatingSequences(processor.Sequence);
        var thread = EventProcessors.StartThread(processor, "failing");
        ring.Publish(0, ring.Next(10));

        Eventually.Joined(thread);
        Assert.IsType<InvalidOperationException>(processor.Fault);
        Assert.False(processor.IsRunning);
        Assert.Equal(4, processor.Sequence.Value); // the failed event is not marked processed
        Assert.Equal(5, recorder.Count);
        Assert.Equal(1, recorder.Shutdowns);
        Assert.Single(log);
        Assert.Contains("sequence 5", log.Single(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_halting_failure_wakes_a_sleeping_downstream_stage_for_the_events_handled_before_it()
    {
        var ring = new ValueRingBuffer<LongValue>(16, ProducerType.Single, new BlockingWaitStrategy());
        var first = new Recorder();
        var second = new Recorder();
        var a = EventProcessors.Create(ring, ring.NewBarrier(), new FailsAt(5, first), ExceptionHandlers.Halt<LongValue>());
        var b = EventProcessors.Create(ring, ring.NewBarrier(a.Sequence), new RecordingValueHandler(second));
        ring.AddGatingSequences(b.Sequence);

        // Published before b starts, so the publish signal cannot be what wakes b: only a can.
        for (var i = 0; i < 10; i++)
        {
            ring[i].Value = i;
        }

        ring.Publish(0, ring.Next(10));
        var tb = EventProcessors.StartThread(b, "downstream");
        Eventually.True(() => (tb.ThreadState & ThreadState.WaitSleepJoin) != 0, "b asleep on a");

        // a handles 0..4 and halts on 5: b must be woken for 0..4, not sleep until some later publish.
        var ta = EventProcessors.StartThread(a, "fails-at-5");
        Eventually.Joined(ta);
        Assert.Equal(4, a.Sequence.Value);
        Eventually.True(() => second.Count == 5, "b handled what a finished before failing", TimeSpan.FromSeconds(15));
        b.Halt();
        Eventually.Joined(tb);
        second.AssertClean();
    }

    [Fact]
    public void Continue_policy_skips_the_failed_event()
    {
        var ring = new ValueRingBuffer<LongValue>(64);
        var recorder = new Recorder();
        var log = new ConcurrentQueue<string>();
        var processor = EventProcessors.Create(ring, ring.NewBarrier(), new SkipAware(5, recorder), ExceptionHandlers.LogAndContinue<LongValue>(log.Enqueue));
        ring.AddGatingSequences(processor.Sequence);
        var thread = EventProcessors.StartThread(processor, "skipping");
        ring.Publish(0, ring.Next(10));

        Eventually.True(() => processor.Sequence.Value == 9, "processed past the failure");
        processor.Halt();
        Eventually.Joined(thread);
        Assert.Null(processor.Fault);
        Assert.Equal(9, recorder.Count);
        Assert.Single(log);
    }

    private struct SkipAware(long failAt, Recorder recorder) : IValueEventHandler<LongValue>
    {
        private long _expected;

        public void OnEvent(ref LongValue data, long sequence, bool endOfBatch)
        {
            if (sequence == failAt)
            {
                _expected = sequence + 1;
                throw new InvalidOperationException("skip me");
            }

            if (sequence != _expected)
            {
                recorder.Fail($"expected {_expected}, got {sequence}");
            }

            _expected = sequence + 1;
            Volatile.Write(ref recorder.Starts, recorder.Starts + 1);
            recorder.Saw(0, recorder.Count, sequence);
        }

        public void OnBatchStart(long batchSize)
        {
        }
    }

    private sealed class CustomPolicy : IExceptionHandler<LongEvent>
    {
        public ConcurrentQueue<long> Failed { get; } = new();

        public void HandleEventException(Exception exception, long sequence, LongEvent data) => Failed.Enqueue(data.Value);

        public void HandleOnStartException(Exception exception) => throw exception;

        public void HandleOnShutdownException(Exception exception)
        {
        }
    }

    private struct FailsOnOdd : IEventHandler<LongEvent>
    {
        public void OnEvent(LongEvent data, long sequence, bool endOfBatch)
        {
            if (data.Value % 2 == 1)
            {
                throw new InvalidOperationException();
            }
        }

        public void OnBatchStart(long batchSize)
        {
        }
    }

    [Fact]
    public void Dsl_uses_the_configured_exception_handler()
    {
        var policy = new CustomPolicy();
        using var d = new Disruptor<LongEvent>(() => new LongEvent(), 16);
        d.SetDefaultExceptionHandler(policy);
        d.HandleEventsWith(new FailsOnOdd());
        var ring = d.Start();
        for (var i = 0; i < 10; i++)
        {
            using var s = ring.PublishEvent();
            s.Event().Value = i;
        }

        Assert.True(d.Shutdown(TimeSpan.FromSeconds(30)));
        Assert.Equal([1L, 3, 5, 7, 9], policy.Failed.ToArray());
        Assert.Empty(d.Faults);
    }

    private struct FailsOnStart : IEventHandler<LongEvent>
    {
        public void OnEvent(LongEvent data, long sequence, bool endOfBatch)
        {
        }

        public void OnBatchStart(long batchSize)
        {
        }

        public void OnStart() => throw new InvalidOperationException("cannot start");
    }

    [Fact]
    public void A_start_failure_the_policy_rethrows_halts_the_processor_with_a_fault()
    {
        var ring = new RingBuffer<LongEvent>(() => new LongEvent(), 16);
        var processor = EventProcessors.Create(ring, ring.NewBarrier(), new FailsOnStart(), new CustomPolicy());
        var thread = EventProcessors.StartThread(processor, "start-fails");
        Eventually.Joined(thread);
        Assert.IsType<InvalidOperationException>(processor.Fault);
    }

    private struct FailingWorker : IValueWorkHandler<LongValue>
    {
        public void OnEvent(ref LongValue data, long sequence) => throw new InvalidOperationException("worker failed");
    }

    [Fact]
    public void A_failing_worker_halts_with_a_fault_under_the_default_policy()
    {
        var ring = new ValueRingBuffer<LongValue>(16);
        var pool = WorkerPool.Create(ring, [], ExceptionHandlers.Halt<LongValue>(), new FailingWorker());
        ring.AddGatingSequences(pool.GetWorkerSequences());
        pool.Start();
        ring.Publish(ring.Next());
        Assert.True(pool.Join(TimeSpan.FromSeconds(30)));
        Assert.IsType<InvalidOperationException>(pool.Workers[0].Fault);
    }
}
