using FastBroker.Testing;

namespace FastBroker.Ring.Tests;

public class BatchCallbackTests
{
    private sealed class BatchLog
    {
        public long Events;
        public long BatchSizes;
        public long EndOfBatchFlags;
        public long Mismatches;
        public int Starts;
        public int Shutdowns;
    }

    private struct BatchTracking(BatchLog log) : IValueEventHandler<LongValue>
    {
        private long _remaining;

        public void OnBatchStart(long batchSize)
        {
            if (_remaining != 0)
            {
                Interlocked.Increment(ref log.Mismatches);
            }

            _remaining = batchSize;
            Interlocked.Add(ref log.BatchSizes, batchSize);
        }

        public void OnEvent(ref LongValue data, long sequence, bool endOfBatch)
        {
            _remaining--;
            if (endOfBatch != (_remaining == 0))
            {
                Interlocked.Increment(ref log.Mismatches);
            }

            if (endOfBatch)
            {
                Interlocked.Increment(ref log.EndOfBatchFlags);
            }

            Interlocked.Increment(ref log.Events);
        }

        public void OnStart() => Interlocked.Increment(ref log.Starts);

        public void OnShutdown() => Interlocked.Increment(ref log.Shutdowns);
    }

    [Fact]
    public void Batch_start_announces_each_batch_and_end_of_batch_marks_its_last_event()
    {
        const int events = 100_000;
        var ring = new ValueRingBuffer<LongValue>(256, ProducerType.Multi);
        var log = new BatchLog();
        var processor = EventProcessors.Create(ring, ring.NewBarrier(), new BatchTracking(log));
        ring.AddGatingSequences(processor.Sequence);
        var thread = EventProcessors.StartThread(processor, "batches");
        for (var i = 0; i < events; i += 8)
        {
            var hi = ring.Next(8);
            ring.Publish(hi - 7, hi);
        }

        Eventually.True(() => Interlocked.Read(ref log.Events) == events, "all events seen");
        processor.Halt();
        Eventually.Joined(thread);
        Assert.Equal(0, log.Mismatches);
        Assert.Equal(events, log.BatchSizes);
        Assert.True(log.EndOfBatchFlags >= 1);
        Assert.Equal((1, 1), (log.Starts, log.Shutdowns));
    }

    [Fact]
    public void A_processor_halted_before_it_runs_still_gets_start_and_shutdown_and_cannot_run_twice()
    {
        var ring = new ValueRingBuffer<LongValue>(8);
        var log = new BatchLog();
        var processor = EventProcessors.Create(ring, ring.NewBarrier(), new BatchTracking(log));
        processor.Halt();
        processor.Run();
        Assert.Equal((1, 1), (log.Starts, log.Shutdowns));
        Assert.False(processor.IsRunning);

        var again = EventProcessors.Create(ring, ring.NewBarrier(), new BatchTracking(log));
        var thread = EventProcessors.StartThread(again, "once");
        Eventually.True(() => again.IsRunning, "running");
        Assert.Throws<InvalidOperationException>(again.Run);
        again.Halt();
        Eventually.Joined(thread);
    }
}
