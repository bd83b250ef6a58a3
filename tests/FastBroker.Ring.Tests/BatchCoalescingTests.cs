using System.Diagnostics;
using FastBroker.Testing;

namespace FastBroker.Ring.Tests;

public class BatchCoalescingTests
{
    [Fact]
    public void Coalescing_is_off_unless_a_spinning_strategy_is_created_with_it()
    {
        Assert.False(BatchCoalescing.None.IsEnabled);
        Assert.False(new YieldingWaitStrategy().Coalescing.IsEnabled);
        Assert.False(new BusySpinWaitStrategy().Coalescing.IsEnabled);
        Assert.False(((IWaitStrategy)new BlockingWaitStrategy()).Coalescing.IsEnabled);
        Assert.False(((IWaitStrategy)new HybridWaitStrategy()).Coalescing.IsEnabled);

        var setting = new BatchCoalescing(256, TimeSpan.FromMicroseconds(0.5));
        Assert.True(setting.IsEnabled);
        Assert.Equal(setting, new YieldingWaitStrategy(setting).Coalescing);
        Assert.Equal(256, new BusySpinWaitStrategy(setting).Coalescing.MinBatch);
    }

    [Theory]
    [InlineData(1, 1_000)]
    [InlineData(0, 1_000)]
    [InlineData(64, 0)]
    [InlineData(64, -1)]
    [InlineData(64, 1_000_001)]
    public void Out_of_range_settings_are_refused(int minBatch, long delayMicroseconds)
        => Assert.Throws<ArgumentOutOfRangeException>(() => new BatchCoalescing(minBatch, TimeSpan.FromMicroseconds(delayMicroseconds)));

    [Fact]
    public void A_small_batch_is_held_for_the_delay_and_handled_with_what_arrived_meanwhile()
    {
        var delay = BatchCoalescing.MaxAllowedDelay;
        var ring = new ValueRingBuffer<LongValue>(64, ProducerType.Single, new YieldingWaitStrategy(new BatchCoalescing(16, delay)));
        var log = new BatchLog();
        var processor = EventProcessors.Create(ring, ring.NewBarrier(), new LoggingHandler(log));
        ring.AddGatingSequences(processor.Sequence);
        var thread = EventProcessors.StartThread(processor, "coalescing-consumer");

        // One by one: the consumer sees the first alone (or a few) and holds them while the rest arrive.
        var firstPublished = log.Now;
        for (var i = 0; i < 10; i++)
        {
            Publish(ring, i);
        }

        Eventually.True(() => log.Count == 10, "all events handled");
        processor.Halt();
        Eventually.Joined(thread);

        Assert.Equal([10], log.BatchSizes);
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), log.Values);

        // A lower bound only: the hold guarantees at least the delay between publish and handling.
        Assert.True(log.HandledAt[0] - firstPublished >= delay, $"first event handled {log.HandledAt[0] - firstPublished} after its publish");
    }

    private static void Publish(ValueRingBuffer<LongValue> ring, long value)
    {
        var seq = ring.Next();
        ring[seq].Value = value;
        ring.Publish(seq);
    }

    private sealed class BatchLog
    {
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private int _count;

        public List<long> BatchSizes { get; } = [];

        public List<long> Values { get; } = [];

        public List<TimeSpan> HandledAt { get; } = [];

        public int Count => Volatile.Read(ref _count);

        public TimeSpan Now => _clock.Elapsed;

        public void Batch(long size) => BatchSizes.Add(size);

        public void Event(long value)
        {
            Values.Add(value);
            HandledAt.Add(_clock.Elapsed);
            Volatile.Write(ref _count, _count + 1);
        }
    }

    private readonly struct LoggingHandler(BatchLog log) : IValueEventHandler<LongValue>
    {
        public void OnEvent(ref LongValue data, long sequence, bool endOfBatch) => log.Event(data.Value);

        public void OnBatchStart(long batchSize) => log.Batch(batchSize);
    }
}
