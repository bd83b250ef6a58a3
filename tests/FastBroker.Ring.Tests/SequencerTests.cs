namespace FastBroker.Ring.Tests;

public class SequencerTests
{
    public static TheoryData<ProducerType> ProducerTypes => new() { ProducerType.Single, ProducerType.Multi };

    [Theory]
    [MemberData(nameof(ProducerTypes))]
    public void Claims_are_consecutive_and_publish_moves_what_consumers_see(ProducerType type)
    {
        var ring = new RingBuffer<LongEvent>(() => new LongEvent(), 8, type);
        var barrier = ring.NewBarrier();
        Assert.Equal(0, ring.Next());
        Assert.Equal(3, ring.Next(3));
        Assert.Equal(-1, barrier.GetAvailable(0));

        ring.Publish(0);
        Assert.Equal(0, barrier.GetAvailable(0));
        ring.Publish(1, 3);
        Assert.Equal(3, barrier.GetAvailable(0));
        Assert.True(ring.IsPublished(3));
        Assert.False(ring.IsPublished(4));
    }

    [Theory]
    [MemberData(nameof(ProducerTypes))]
    public void HasPublished_stays_true_after_the_slot_is_claimed_and_published_again(ProducerType type)
    {
        var ring = new RingBuffer<LongEvent>(() => new LongEvent(), 4, type);
        var consumer = new Sequence();
        ring.AddGatingSequences(consumer);

        Assert.Equal(1, ring.Next(2));
        Assert.False(ring.HasPublished(0));
        Assert.False(ring.HasPublished(1));
        ring.Publish(0, 1);
        Assert.True(ring.HasPublished(0));
        Assert.True(ring.HasPublished(1));

        // Three more laps over the same slots: a claimed sequence stays published, also once the slot is reused.
        for (var lap = 1; lap <= 3; lap++)
        {
            consumer.SetValue(ring.Cursor);
            var hi = ring.Next(4);
            Assert.False(ring.HasPublished(hi), $"lap {lap}: claimed, not yet published");
            Assert.True(ring.HasPublished(1), $"lap {lap}: sequence 1, its slot claimed again");
            ring.Publish(hi - 3, hi);
            Assert.True(ring.HasPublished(hi));
            Assert.True(ring.HasPublished(0), $"lap {lap}: sequence 0, its slot published again");
            Assert.False(ring.IsPublished(0), "IsAvailable is for the slot's current sequence only");
        }
    }

    [Theory]
    [MemberData(nameof(ProducerTypes))]
    public void TryNext_returns_false_when_the_ring_is_full_and_true_once_the_consumer_moves(ProducerType type)
    {
        var ring = new RingBuffer<LongEvent>(() => new LongEvent(), 4, type);
        var consumer = new Sequence();
        ring.AddGatingSequences(consumer);

        Assert.True(ring.TryNext(4, out var hi));
        Assert.Equal(3, hi);
        ring.Publish(0, 3);
        Assert.Equal(0, ring.RemainingCapacity());
        Assert.False(ring.TryNext(out _));
        Assert.False(ring.TryNext(2, out _));
        Assert.False(ring.HasAvailableCapacity(1));

        consumer.SetValue(1);
        Assert.Equal(2, ring.RemainingCapacity());
        Assert.False(ring.TryNext(3, out _));
        Assert.True(ring.TryNext(2, out hi));
        Assert.Equal(5, hi);
    }

    [Theory]
    [MemberData(nameof(ProducerTypes))]
    public void Claim_sizes_outside_one_to_buffer_size_are_rejected(ProducerType type)
    {
        var ring = new RingBuffer<LongEvent>(() => new LongEvent(), 4, type);
        Assert.Throws<ArgumentOutOfRangeException>(() => ring.Next(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => ring.Next(5));
        Assert.Throws<ArgumentOutOfRangeException>(() => ring.TryNext(0, out _));
        Assert.Throws<ArgumentOutOfRangeException>(() => ring.Next(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => ring.Next(int.MinValue));
        Assert.Throws<ArgumentOutOfRangeException>(() => ring.TryNext(5, out _));
        Assert.Throws<ArgumentOutOfRangeException>(() => ring.TryNext(-1, out _));
        Assert.Equal(-1, ring.Cursor); // nothing was claimed by the refused calls

        // A whole ring at once is allowed, and the next whole ring waits for the consumer.
        var consumer = new Sequence();
        ring.AddGatingSequences(consumer);
        Assert.True(ring.TryNext(4, out var hi));
        Assert.Equal(3, hi);
        ring.Publish(0, 3);
        Assert.False(ring.TryNext(4, out _));
        consumer.SetValue(3);
        Assert.Equal(7, ring.Next(4));
    }

    [Fact]
    public void Buffer_size_must_be_a_power_of_two()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ValueRingBuffer<LongValue>(6));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ValueRingBuffer<LongValue>(0));
        Assert.Equal(1, new ValueRingBuffer<LongValue>(1).BufferSize);
    }

    [Fact]
    public void Multi_producer_barrier_stops_at_the_first_unpublished_slot()
    {
        var ring = new ValueRingBuffer<LongValue>(8, ProducerType.Multi);
        var barrier = ring.NewBarrier();
        var a = ring.Next();
        var b = ring.Next();
        var c = ring.Next();
        ring.Publish(c);
        ring.Publish(a);
        Assert.Equal(a, barrier.GetAvailable(0));
        ring.Publish(b);
        Assert.Equal(c, barrier.GetAvailable(0));
    }

    [Theory]
    [MemberData(nameof(ProducerTypes))]
    public void Next_waits_for_a_consumer_to_free_a_slot(ProducerType type)
    {
        var ring = new ValueRingBuffer<LongValue>(2, type);
        var consumer = new Sequence();
        ring.AddGatingSequences(consumer);
        ring.Publish(ring.Next(2) - 1, 1);

        long claimed = -1;
        var producer = new Thread(() => Volatile.Write(ref claimed, ring.Next())) { IsBackground = true, Name = "blocked-producer" };
        producer.Start();

        // The producer cannot finish until the consumer moves; then it must.
        Assert.Equal(-1, Volatile.Read(ref claimed));
        consumer.SetValue(0);
        FastBroker.Testing.Eventually.Joined(producer);
        Assert.Equal(2, claimed);
    }

    [Fact]
    public void Gating_sequences_added_later_start_at_the_cursor_and_can_be_removed()
    {
        var ring = new RingBuffer<LongEvent>(() => new LongEvent(), 4);
        ring.Publish(ring.Next(3));
        var late = new Sequence();
        ring.AddGatingSequences(late);
        Assert.Equal(2, late.Value);
        Assert.Equal(2, ring.GetMinimumGatingSequence());
        Assert.True(ring.RemoveGatingSequence(late));
        Assert.False(ring.RemoveGatingSequence(late));
    }

    [Fact]
    public void A_consumer_added_while_the_single_producer_claims_ahead_of_its_publishes_is_not_lapped()
    {
        var ring = new ValueRingBuffer<LongValue>(4, ProducerType.Single);
        ring.Publish(0, ring.Next(3));

        // The producer claims 3, then 4 before publishing 3 (it publishes the two as a range): the claim of 4
        // looks at the (absent) consumers while 3 is claimed but not published.
        Assert.Equal(3, ring.Next());
        Assert.Equal(4, ring.Next());

        var consumer = new Sequence();
        ring.AddGatingSequences(consumer);
        Assert.Equal(2, consumer.Value); // joins at the published cursor: 3 and 4 are still to come
        ring.Publish(3, 4);

        // The consumer has read nothing past 2: 3, 4, 5 and 6 fill the ring, and 7 would reuse the slot of 3.
        Assert.True(ring.TryNext(out var five));
        Assert.Equal(5, five);
        Assert.True(ring.TryNext(out var six));
        Assert.Equal(6, six);
        Assert.False(ring.TryNext(out _), "claimed the slot of sequence 3 before the consumer read it");
        Assert.False(ring.HasAvailableCapacity(1));
    }

    [Fact]
    public void Publish_scopes_publish_on_dispose()
    {
        var ring = new ValueRingBuffer<LongValue>(4);
        using (var scope = ring.PublishEvent())
        {
            scope.Event().Value = 42;
        }

        Assert.Equal(0, ring.Cursor);
        Assert.Equal(42, ring[0].Value);

        var classRing = new RingBuffer<LongEvent>(() => new LongEvent(), 4);
        Assert.True(classRing.TryPublishEvent(out var s2));
        using (s2)
        {
            s2.Event().Value = 7;
        }

        Assert.Equal(7, classRing[0].Value);
        Assert.Equal(0, classRing.Cursor);
    }
}
