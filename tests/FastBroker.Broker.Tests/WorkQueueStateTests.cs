using FastBroker.Engine;

namespace FastBroker.BrokerTests;

public class WorkQueueStateTests
{
    private static readonly TimeSpan s_visibility = TimeSpan.FromMilliseconds(1_000);

    [Fact]
    public void Members_with_credit_take_turns_and_prefetch_caps_each()
    {
        var q = new WorkQueueState(0, maxDeliveries: 3, s_visibility);
        var a = q.AddMember(prefetch: 2);
        var b = q.AddMember(prefetch: 1);
        for (var i = 0; i < 10; i++)
        {
            q.Enqueue(i);
        }

        var got = new List<WorkAssignment>();
        while (q.TryAssign(0, out var w))
        {
            got.Add(w);
        }

        Assert.Equal(3, got.Count); // 2 + 1 credits
        Assert.Equal(new[] { a, b, a }, got.Select(g => g.MemberId));
        Assert.Equal(new long[] { 0, 1, 2 }, got.Select(g => g.Offset));
        Assert.Equal(WorkQueueOutcome.Acked, q.Ack(b, 1, 1));
        Assert.True(q.TryAssign(0, out var next));
        Assert.Equal(b, next.MemberId);
        Assert.Equal(3, next.Offset);
    }

    [Fact]
    public void Unacked_delivery_is_redelivered_only_after_the_visibility_timeout()
    {
        var q = new WorkQueueState(0, maxDeliveries: 5, s_visibility);
        var a = q.AddMember(1);
        var b = q.AddMember(1);
        q.Enqueue(0);
        Assert.True(q.TryAssign(0, out var first));
        Assert.Equal(a, first.MemberId);
        Assert.True(q.TryHandOver(a, first.Offset, first.DeliveryCount, first.Sequence));

        Assert.False(q.TryAssign(999, out _)); // b has credit, but nothing is ready before the timeout
        Assert.Equal(1_000, q.NextDueMs());
        Assert.True(q.TryAssign(1_000, out var again));
        Assert.Equal(b, again.MemberId);
        Assert.Equal(0, again.Offset);
        Assert.Equal(2, again.DeliveryCount);

        // The first member's late ack names a delivery that no longer exists: refused, so no double ack.
        Assert.Equal(WorkQueueOutcome.UnknownDelivery, q.Ack(a, 0, 1));
        Assert.Equal(WorkQueueOutcome.Acked, q.Ack(b, 0, 2));
        Assert.Equal(1, q.AckFloor);
        Assert.Equal(WorkQueueOutcome.UnknownDelivery, q.Ack(b, 0, 2));
    }

    /// <summary>
    /// Acks and nacks name a delivery (member, offset, count), not an offset: a member's late ACK or NACK of a delivery
    /// whose visibility timeout passed changes nothing, so the redelivery's member still owns the message, and its
    /// nack, its timeout and its ack are what count (an ack by offset would lose the message when that member fails).
    /// </summary>
    [Fact]
    public void A_late_ack_or_nack_of_a_timed_out_delivery_leaves_the_redelivery_to_fail_over_as_before()
    {
        var q = new WorkQueueState(0, maxDeliveries: 5, s_visibility);
        var a = q.AddMember(1);
        var b = q.AddMember(1);
        q.Enqueue(0);
        Assert.True(q.TryAssign(0, out var toA));
        Assert.True(q.TryHandOver(a, toA.Offset, toA.DeliveryCount, toA.Sequence));
        Assert.True(q.TryAssign(1_000, out var toB)); // a's visibility timeout passed
        Assert.Equal((b, 0L, 2), (toB.MemberId, toB.Offset, toB.DeliveryCount));
        Assert.True(q.TryHandOver(b, toB.Offset, toB.DeliveryCount, toB.Sequence));

        Assert.Equal(WorkQueueOutcome.UnknownDelivery, q.Ack(a, 0, 1));
        Assert.Equal(WorkQueueOutcome.UnknownDelivery, q.Nack(a, 0, 1, requeue: false, delayMs: 0, error: "late", nowMs: 1_001));
        Assert.Equal((0L, 1, 0L), (q.AckFloor, q.Counters.InFlight, q.Counters.DeadLettered));

        // b's nack still redelivers it (a, whose credit came back with the timeout, has its turn).
        Assert.Equal(WorkQueueOutcome.Requeued, q.Nack(b, 0, 2, requeue: true, delayMs: 0, error: null, nowMs: 1_001));
        Assert.True(q.TryAssign(1_001, out var third));
        Assert.Equal((0L, 3), (third.Offset, third.DeliveryCount));
        Assert.True(q.TryHandOver(third.MemberId, third.Offset, third.DeliveryCount, third.Sequence));

        // Stale tags again, of both earlier deliveries; then the third one's timeout still brings it back.
        Assert.Equal(WorkQueueOutcome.UnknownDelivery, q.Ack(a, 0, 1));
        Assert.Equal(WorkQueueOutcome.UnknownDelivery, q.Ack(b, 0, 2));
        Assert.Equal(1, q.ExpireDue(2_001));
        Assert.True(q.TryAssign(2_001, out var fourth));
        Assert.Equal((0L, 4), (fourth.Offset, fourth.DeliveryCount));
        Assert.Equal(WorkQueueOutcome.Acked, q.Ack(fourth.MemberId, 0, 4));

        // A late nack after the message was acked: refused, nothing requeued or dead-lettered.
        Assert.Equal(WorkQueueOutcome.UnknownDelivery, q.Nack(third.MemberId, 0, 3, requeue: true, delayMs: 0, error: null, nowMs: 2_002));
        Assert.Equal(WorkQueueOutcome.UnknownDelivery, q.Nack(b, 0, 2, requeue: false, delayMs: 0, error: null, nowMs: 2_002));
        Assert.False(q.TryAssign(10_000, out _));
        Assert.False(q.TryTakeDeadLetter(out _));
        Assert.Equal((1L, 1L, 0L), (q.AckFloor, q.Counters.Acked, q.Counters.DeadLettered));
    }

    [Fact]
    public void Settled_deliveries_leave_no_timeout_behind_and_a_steady_stream_allocates_nothing()
    {
        // The default 30 s visibility timeout and a member that acks each delivery at once: the timeouts the group
        // tracks are those of what is in flight, not of every delivery of the last 30 s, which grew the heap (the
        // broker's memory, and an allocation per doubling) by the ack rate times the timeout.
        var q = new WorkQueueState(0, maxDeliveries: 5, TimeSpan.FromSeconds(30));
        var fast = q.AddMember(64);
        var next = 0L;
        void Run(int count)
        {
            for (var i = 0; i < count; i++, next++)
            {
                q.Enqueue(next);
                if (!q.TryAssign(next / 1000, out var w) || q.Ack(fast, w.Offset, w.DeliveryCount) != WorkQueueOutcome.Acked)
                {
                    Assert.Fail($"offset {next} was not delivered and acked"); // (xunit's asserts allocate: not per message)
                }
            }
        }

        Run(100_000);
        var before = GC.GetAllocatedBytesForCurrentThread();
        Run(100_000);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 16 * 1024, $"{allocated} bytes allocated by 100,000 deliveries and acks");
        Assert.Null(q.NextDueMs()); // nothing in flight: no timeout to wait for
        Assert.True(q.TrackedTimeouts <= 64, $"{q.TrackedTimeouts} timeouts tracked with nothing in flight");

        // A delivery that is never acked keeps the oldest deadline in place; the ones acked behind it still go.
        var slow = q.AddMember(1);
        WorkAssignment held = default;
        for (var turn = 0; turn < 2 && held.MemberId != slow; turn++)
        {
            q.Enqueue(next++);
            Assert.True(q.TryAssign(200, out held));
            if (held.MemberId == fast)
            {
                Assert.Equal(WorkQueueOutcome.Acked, q.Ack(fast, held.Offset, held.DeliveryCount));
            }
        }

        Assert.Equal(slow, held.MemberId); // round-robin: its turn came within two
        Run(20_000);
        Assert.Equal(200 + 30_000, q.NextDueMs());
        Assert.True(q.TrackedTimeouts <= (2 * 1) + 64, $"{q.TrackedTimeouts} timeouts tracked for 1 delivery in flight");
        Assert.Equal(WorkQueueOutcome.Acked, q.Ack(slow, held.Offset, held.DeliveryCount));
        Assert.Null(q.NextDueMs());
        Assert.Equal(next, q.AckFloor);
    }

    [Fact]
    public void After_max_deliveries_the_message_is_dead_lettered_with_its_history()
    {
        var q = new WorkQueueState(0, maxDeliveries: 3, s_visibility);
        var m = q.AddMember(1);
        q.Enqueue(0);
        for (var attempt = 1; attempt <= 3; attempt++)
        {
            Assert.True(q.TryAssign(0, out var w));
            Assert.Equal(attempt, w.DeliveryCount);
            var outcome = q.Nack(m, 0, attempt, requeue: true, delayMs: 0, error: $"boom {attempt}", nowMs: 0);
            Assert.Equal(attempt < 3 ? WorkQueueOutcome.Requeued : WorkQueueOutcome.DeadLettered, outcome);
        }

        Assert.False(q.TryAssign(0, out _));
        Assert.True(q.TryTakeDeadLetter(out var dl));
        Assert.Equal(new DeadLetter(0, 3, "boom 3"), dl);
        Assert.Equal(1, q.AckFloor);
        Assert.Equal(1, q.Counters.DeadLettered);
    }

    [Fact]
    public void Timeouts_count_as_failed_deliveries_towards_the_dead_letter_limit()
    {
        var q = new WorkQueueState(0, maxDeliveries: 2, s_visibility);
        var m = q.AddMember(1);
        q.Enqueue(0);
        Assert.True(q.TryAssign(0, out var first));
        Assert.True(q.TryHandOver(m, first.Offset, first.DeliveryCount, first.Sequence));
        Assert.True(q.TryAssign(1_000, out var second));
        Assert.Equal(2, second.DeliveryCount);
        Assert.True(q.TryHandOver(m, second.Offset, second.DeliveryCount, second.Sequence));
        Assert.Equal(1, q.ExpireDue(2_000));
        Assert.True(q.TryTakeDeadLetter(out var dl));
        Assert.Equal(2, dl.DeliveryCount);
        Assert.Equal("visibility timeout expired", dl.LastError);
    }

    [Fact]
    public void Nack_with_delay_waits_and_nack_without_requeue_dead_letters_at_once()
    {
        var q = new WorkQueueState(0, maxDeliveries: 10, s_visibility);
        var m = q.AddMember(5);
        q.Enqueue(0);
        q.Enqueue(1);
        Assert.True(q.TryAssign(0, out var w0));
        Assert.True(q.TryAssign(0, out var w1));
        Assert.Equal(WorkQueueOutcome.Requeued, q.Nack(m, w0.Offset, 1, requeue: true, delayMs: 500, error: null, nowMs: 100));
        Assert.Equal(WorkQueueOutcome.DeadLettered, q.Nack(m, w1.Offset, 1, requeue: false, delayMs: 0, error: "poison", nowMs: 100));
        Assert.False(q.TryAssign(599, out _));
        Assert.True(q.TryAssign(600, out var retry));
        Assert.Equal(0, retry.Offset);
        Assert.True(q.TryTakeDeadLetter(out var dl));
        Assert.Equal(new DeadLetter(1, 1, "poison"), dl);
    }

    [Fact]
    public void Higher_priority_levels_go_first_and_redeliveries_before_fresh_messages()
    {
        var q = new WorkQueueState(0, maxDeliveries: 10, s_visibility, priorityLevels: 3);
        var m = q.AddMember(1);
        q.Enqueue(0, priority: 0);
        q.Enqueue(1, priority: 2);
        q.Enqueue(2, priority: 1);
        q.Enqueue(3, priority: 2);
        var order = new List<long>();
        while (q.TryAssign(0, out var w))
        {
            order.Add(w.Offset);
            if (w.Offset == 1 && w.DeliveryCount == 1)
            {
                q.Nack(m, 1, 1, requeue: true, delayMs: 0, error: null, nowMs: 0);
            }
            else
            {
                q.Ack(m, w.Offset, w.DeliveryCount);
            }
        }

        Assert.Equal(new long[] { 1, 1, 3, 2, 0 }, order);
        Assert.Equal(4, q.AckFloor);
    }

    [Fact]
    public void A_member_that_leaves_gracefully_returns_its_messages_at_once()
    {
        var q = new WorkQueueState(0, maxDeliveries: 10, s_visibility);
        var a = q.AddMember(2);
        q.Enqueue(0);
        q.Enqueue(1);
        Assert.True(q.TryAssign(0, out var w0));
        Assert.True(q.TryAssign(0, out var w1));
        Assert.True(q.TryHandOver(a, w0.Offset, w0.DeliveryCount, w0.Sequence));
        Assert.True(q.TryHandOver(a, w1.Offset, w1.DeliveryCount, w1.Sequence));
        q.RemoveMember(a, requeueNow: true);
        var b = q.AddMember(2);
        Assert.True(q.TryAssign(1, out var w));
        Assert.Equal((b, 0L, 2), (w.MemberId, w.Offset, w.DeliveryCount));
    }

    [Fact]
    public void A_message_whose_members_keep_leaving_without_acking_is_dead_lettered_after_max_deliveries()
    {
        var q = new WorkQueueState(0, maxDeliveries: 2, s_visibility);
        q.Enqueue(0);
        for (var delivery = 1; delivery <= 2; delivery++)
        {
            var member = q.AddMember(1);
            Assert.True(q.TryAssign(0, out var w));
            Assert.Equal((0L, delivery), (w.Offset, w.DeliveryCount));
            Assert.True(q.TryHandOver(member, w.Offset, w.DeliveryCount, w.Sequence));
            q.RemoveMember(member, requeueNow: true); // the poison message takes its worker down
        }

        Assert.True(q.TryTakeDeadLetter(out var dl), "dead-lettered after its second delivery");
        Assert.Equal((0L, 2), (dl.Offset, dl.DeliveryCount));
        Assert.Contains("left", dl.LastError, StringComparison.Ordinal);
        q.AddMember(1);
        Assert.False(q.TryAssign(0, out _), "not delivered a third time");
        Assert.Equal(1, q.AckFloor);
    }

    [Fact]
    public void A_delivery_never_handed_to_its_member_is_no_attempt_when_the_member_leaves()
    {
        var q = new WorkQueueState(0, maxDeliveries: 2, s_visibility);
        q.Enqueue(0);
        q.Enqueue(1);
        for (var flap = 0; flap < 4; flap++)
        {
            var member = q.AddMember(2);
            Assert.True(q.TryAssign(flap, out var w0));
            Assert.True(q.TryAssign(flap, out var w1));
            Assert.Equal((0L, 1, 1L, 1), (w0.Offset, w0.DeliveryCount, w1.Offset, w1.DeliveryCount));
            q.RemoveMember(member, requeueNow: flap % 2 == 0); // gracefully or vanished: back at once either way
        }

        Assert.False(q.TryTakeDeadLetter(out _), "nothing dead-lettered");
        Assert.Equal(2, q.Counters.Ready);
        Assert.Equal(0, q.Counters.Redelivered);

        // Handed over, it is an attempt as before: the first goes out again as delivery 2, the second still as 1.
        var a = q.AddMember(2);
        Assert.True(q.TryAssign(10, out var h0));
        Assert.True(q.TryAssign(10, out var h1));
        Assert.True(q.TryHandOver(a, h0.Offset, h0.DeliveryCount, h0.Sequence));
        q.RemoveMember(a, requeueNow: true);
        var b = q.AddMember(2);
        Assert.True(q.TryAssign(20, out var r0));
        Assert.True(q.TryAssign(20, out var r1));
        Assert.Equal((0L, 2, 1L, 1), (r0.Offset, r0.DeliveryCount, r1.Offset, r1.DeliveryCount));
        Assert.False(q.TryHandOver(a, h1.Offset, h1.DeliveryCount, h1.Sequence), "a delivery of a member that left is not handed over");
        Assert.True(q.TryHandOver(b, r1.Offset, r1.DeliveryCount, r1.Sequence));
    }

    [Fact]
    public void A_delivery_whose_visibility_timeout_passes_before_it_is_handed_over_is_no_attempt()
    {
        var q = new WorkQueueState(0, maxDeliveries: 1, s_visibility);
        var a = q.AddMember(1);
        q.Enqueue(0);
        Assert.True(q.TryAssign(0, out var unread));

        // The member never fetched it: its timeout returns it with its count restored, not dead-lettered (the 1st of 1).
        Assert.Equal(1, q.ExpireDue(1_000));
        Assert.False(q.TryTakeDeadLetter(out _), "nothing dead-lettered");
        Assert.Equal(0, q.Counters.Redelivered);
        Assert.True(q.TryAssign(1_000, out var again));
        Assert.Equal((a, 0L, 1), (again.MemberId, again.Offset, again.DeliveryCount));

        // The same tag again, to the same member, whose queue still holds the stale copy: only the new one is handed
        // over, so the member gets the message once.
        Assert.NotEqual(unread.Sequence, again.Sequence);
        Assert.False(q.TryHandOver(a, unread.Offset, unread.DeliveryCount, unread.Sequence), "the stale copy is skipped");
        Assert.True(q.TryHandOver(a, again.Offset, again.DeliveryCount, again.Sequence));

        // Handed over, its timeout is an attempt: the 1st of 1, dead-lettered.
        Assert.Equal(2_000, q.NextDueMs());
        Assert.Equal(1, q.ExpireDue(2_000));
        Assert.True(q.TryTakeDeadLetter(out var dl));
        Assert.Equal(new DeadLetter(0, 1, "visibility timeout expired"), dl);
    }

    [Fact]
    public void Ack_floor_advances_over_out_of_order_acks_and_skips()
    {
        var q = new WorkQueueState(100, maxDeliveries: 3, s_visibility);
        var m = q.AddMember(10);
        q.Enqueue(100);
        q.Skip(101);
        q.Enqueue(102);
        Assert.True(q.TryAssign(0, out var w100));
        Assert.True(q.TryAssign(0, out var w102));
        Assert.Equal(102, w102.Offset);
        q.Ack(m, 102, 1);
        Assert.Equal(100, q.AckFloor);
        Assert.Equal(new long[] { 101, 102 }, q.Snapshot().DoneAboveFloor);
        q.Ack(m, w100.Offset, 1);
        Assert.Equal(103, q.AckFloor);
        Assert.Empty(q.Snapshot().DoneAboveFloor);
    }

    [Fact]
    public void Offsets_must_be_offered_densely()
    {
        var q = new WorkQueueState(0, 3, s_visibility);
        q.Enqueue(0);
        Assert.Throws<InvalidOperationException>(() => q.Enqueue(2));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(42)]
    public void Random_acks_nacks_and_crashes_lose_nothing_and_ack_each_message_at_most_once(int seed)
    {
        const int Messages = 2_000;
        const int MaxDeliveries = 4;
        var rng = new Random(seed);
        var q = new WorkQueueState(0, MaxDeliveries, s_visibility);
        var members = new List<int> { q.AddMember(3), q.AddMember(3), q.AddMember(3) };
        var held = new Dictionary<int, List<WorkAssignment>>();
        foreach (var id in members)
        {
            held[id] = [];
        }

        var acked = new HashSet<long>();
        var deadLettered = new HashSet<long>();
        var lastHandedOut = new Dictionary<long, long>(); // offset -> time of its latest delivery
        var live = new Dictionary<long, WorkAssignment>(); // offset -> its latest delivery, while not settled
        long now = 0;
        var enqueued = 0;
        for (var step = 0; step < 200_000 && (acked.Count + deadLettered.Count) < Messages; step++)
        {
            now += rng.Next(0, 50);
            if (enqueued < Messages && rng.Next(3) == 0)
            {
                q.Enqueue(enqueued++);
            }

            while (q.TryAssign(now, out var w))
            {
                Assert.DoesNotContain(w.Offset, acked);
                if (w.DeliveryCount > 1)
                {
                    // Redelivery: only after the previous delivery timed out or was given back.
                    Assert.True(lastHandedOut.ContainsKey(w.Offset));
                }

                lastHandedOut[w.Offset] = now;

                // Prefetch: the deliveries the member holds now (the latest of each offset, neither settled nor past its
                // visibility timeout at this time) are at most 3, across redeliveries, nacks and timeouts.
                live[w.Offset] = w;
                var holds = live.Values.Count(x => x.MemberId == w.MemberId && lastHandedOut[x.Offset] + s_visibility.TotalMilliseconds > now);
                Assert.True(holds <= 3, $"member {w.MemberId} holds {holds} deliveries, more than its prefetch of 3");
                Assert.True(q.TryHandOver(w.MemberId, w.Offset, w.DeliveryCount, w.Sequence));
                held[w.MemberId].Add(w);
            }

            var memberIndex = rng.Next(members.Count);
            var member = members[memberIndex];
            var mine = held[member];
            switch (rng.Next(10))
            {
                case < 6 when mine.Count > 0:
                    var ack = mine[0];
                    mine.RemoveAt(0);
                    if (q.Ack(member, ack.Offset, ack.DeliveryCount) == WorkQueueOutcome.Acked)
                    {
                        live.Remove(ack.Offset);
                        Assert.True(acked.Add(ack.Offset), $"offset {ack.Offset} acked twice");
                    }

                    break;
                case 6 when mine.Count > 0:
                    var nack = mine[0];
                    mine.RemoveAt(0);
                    if (q.Nack(member, nack.Offset, nack.DeliveryCount, requeue: rng.Next(4) != 0, delayMs: rng.Next(0, 100), error: "err", nowMs: now) != WorkQueueOutcome.UnknownDelivery)
                    {
                        live.Remove(nack.Offset);
                    }

                    break;
                case 7 when rng.Next(20) == 0:
                    // The member vanishes without a word: its deliveries wait for the visibility timeout.
                    q.RemoveMember(member, requeueNow: false);
                    members[memberIndex] = q.AddMember(3);
                    held[members[memberIndex]] = [];
                    break;
                default:
                    break;
            }

            TakeDeadLetters();
        }

        Assert.Equal(Messages, acked.Count + deadLettered.Count);
        Assert.Empty(acked.Intersect(deadLettered));

        void TakeDeadLetters()
        {
            while (q.TryTakeDeadLetter(out var dl))
            {
                Assert.True(deadLettered.Add(dl.Offset), $"offset {dl.Offset} dead-lettered twice");
                live.Remove(dl.Offset);
                Assert.DoesNotContain(dl.Offset, acked);
                Assert.InRange(dl.DeliveryCount, 1, MaxDeliveries);
            }
        }
        Assert.Equal(Messages, q.AckFloor);
    }
}
