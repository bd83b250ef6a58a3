namespace FastBroker.Ring.Tests;

public class PollerTests
{
    private struct Collect(List<long> seen, int stopAfter) : IEventPollHandler<LongEvent>
    {
        public bool OnEvent(LongEvent data, long sequence, bool endOfBatch)
        {
            seen.Add(data.Value);
            return seen.Count % stopAfter != 0;
        }
    }

    [Fact]
    public void Poll_reports_idle_processing_and_stops_when_the_handler_says_so()
    {
        var ring = new RingBuffer<LongEvent>(() => new LongEvent(), 8, ProducerType.Multi);
        var poller = ring.NewPoller();
        var seen = new List<long>();
        var handler = new Collect(seen, 3);

        Assert.Equal(PollState.Idle, poller.Poll(ref handler));
        for (var i = 0; i < 5; i++)
        {
            using var s = ring.PublishEvent();
            s.Event().Value = i * 10;
        }

        Assert.Equal(PollState.Processing, poller.Poll(ref handler));
        Assert.Equal([0, 10, 20], seen);
        Assert.Equal(2, poller.Sequence.Value);
        Assert.Equal(PollState.Processing, poller.Poll(ref handler));
        Assert.Equal([0, 10, 20, 30, 40], seen);
        Assert.Equal(PollState.Idle, poller.Poll(ref handler));
    }

    [Fact]
    public void A_poller_gates_the_ring()
    {
        var ring = new RingBuffer<LongEvent>(() => new LongEvent(), 4);
        var poller = ring.NewPoller();
        Assert.True(ring.TryNext(4, out var hi));
        ring.Publish(hi - 3, hi);
        Assert.False(ring.TryNext(out _));
        var handler = new Collect([], int.MaxValue);
        poller.Poll(ref handler);
        Assert.True(ring.TryNext(4, out _));
    }

    private struct ValueSum : IValueEventPollHandler<LongValue>
    {
        public long Sum;

        public bool OnEvent(ref LongValue data, long sequence, bool endOfBatch)
        {
            Sum += data.Value;
            data.Value = -1; // by reference: visible to later stages
            return true;
        }
    }

    [Fact]
    public void A_poller_after_another_consumer_reports_gating_until_it_moves()
    {
        var ring = new ValueRingBuffer<LongValue>(8);
        var upstream = new Sequence();
        var poller = ring.NewPoller(upstream);
        ring.Publish(ring.Next());
        ring[0].Value = 5;
        var handler = default(ValueSum);
        Assert.Equal(PollState.Gating, poller.Poll(ref handler));
        upstream.SetValue(0);
        Assert.Equal(PollState.Processing, poller.Poll(ref handler));
        Assert.Equal(5, handler.Sum);
        Assert.Equal(-1, ring[0].Value);
    }

    private struct Throwing : IEventPollHandler<LongEvent>
    {
        public bool OnEvent(LongEvent data, long sequence, bool endOfBatch)
            => sequence == 1 ? throw new InvalidOperationException("boom") : true;
    }

    [Fact]
    public void A_handler_exception_propagates_and_events_before_it_count_as_handled()
    {
        var ring = new RingBuffer<LongEvent>(() => new LongEvent(), 8);
        var poller = ring.NewPoller();
        ring.Publish(0, ring.Next(3));
        var handler = default(Throwing);
        Assert.Throws<InvalidOperationException>(() => poller.Poll(ref handler));
        Assert.Equal(0, poller.Sequence.Value);
    }
}
