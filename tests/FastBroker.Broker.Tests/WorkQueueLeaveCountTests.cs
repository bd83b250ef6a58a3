using FastBroker.Engine;

namespace FastBroker.BrokerTests;

/// <summary>
/// A member that leaves (gracefully, its connection lost, or vanished) with several deliveries: only the first one it
/// was handed, the one it was working on, counts as an attempt; those waiting behind it go back uncounted.
/// </summary>
public class WorkQueueLeaveCountTests
{
    private static readonly TimeSpan s_visibility = TimeSpan.FromMilliseconds(1_000);

    [Fact]
    public void A_member_that_leaves_with_its_prefetch_uses_up_an_attempt_only_of_the_first_delivery_it_was_handed()
    {
        var q = new WorkQueueState(0, maxDeliveries: 5, s_visibility);
        Enqueue(q, 5);
        var a = q.AddMember(prefetch: 5);
        var handed = AssignAndHand(q, a, 0, 5);
        Assert.Equal(WorkQueueOutcome.Acked, q.Ack(a, handed[0].Offset, handed[0].DeliveryCount));

        q.RemoveMember(a, requeueNow: true);
        var b = q.AddMember(prefetch: 10);
        var again = AssignAll(q, 1);
        Assert.All(again, w => Assert.Equal(b, w.MemberId));
        Assert.Equal([(1L, 2), (2L, 1), (3L, 1), (4L, 1)], again.Select(w => (w.Offset, w.DeliveryCount)).OrderBy(x => x.Offset));
        Assert.Equal(1, q.Counters.Redelivered);
    }

    [Fact]
    public void The_delivery_that_counts_is_the_first_handed_not_the_lowest_offset()
    {
        var q = new WorkQueueState(0, maxDeliveries: 5, s_visibility);
        Enqueue(q, 3);
        var a = q.AddMember(prefetch: 3);
        var handed = AssignAndHand(q, a, 0, 3);

        // Offset 0 is nacked and comes back to the same member behind 1 and 2, which it works on next.
        Assert.Equal(WorkQueueOutcome.Requeued, q.Nack(a, 0, handed[0].DeliveryCount, requeue: true, delayMs: 0, error: "busy", nowMs: 0));
        var redelivery = AssignAndHand(q, a, 0, 1).Single();
        Assert.Equal((0L, 2), (redelivery.Offset, redelivery.DeliveryCount));

        q.RemoveMember(a, requeueNow: true);
        q.AddMember(prefetch: 10);
        var again = AssignAll(q, 1);
        Assert.Equal([(0L, 2), (1L, 2), (2L, 1)], again.Select(w => (w.Offset, w.DeliveryCount)).OrderBy(x => x.Offset));
    }

    [Fact]
    public void Consumers_lost_over_and_over_dead_letter_only_what_they_were_working_on()
    {
        const int Messages = 100;
        var q = new WorkQueueState(0, maxDeliveries: 1, s_visibility);
        Enqueue(q, Messages);

        // Each member takes 10, acks none and is lost: a deploy killing consumers, or their connections dropping.
        const int Losses = 20;
        var now = 0L;
        for (var loss = 0; loss < Losses; loss++)
        {
            var member = q.AddMember(prefetch: 10);
            Assert.Equal(10, AssignAndHand(q, member, now, 10).Count);
            q.RemoveMember(member, requeueNow: loss % 2 == 0);
            now += 2 * (long)s_visibility.TotalMilliseconds; // a vanished member's deliveries come back at their timeout
            q.ExpireDue(now);
        }

        // One message per loss, each the first its member was handed (before, all 10 of each: every message by the 10th).
        var deadLettered = new List<long>();
        while (q.TryTakeDeadLetter(out var dl))
        {
            Assert.Equal(1, dl.DeliveryCount);
            deadLettered.Add(dl.Offset);
        }

        Assert.Equal(Losses, deadLettered.Count);
        var rest = AssignAll(q, now, q.AddMember(prefetch: Messages));
        Assert.All(rest, w => Assert.Equal(1, w.DeliveryCount));
        Assert.Equal(Enumerable.Range(0, Messages).Select(i => (long)i), deadLettered.Concat(rest.Select(w => w.Offset)).Order());
    }

    [Fact]
    public void A_vanished_members_deliveries_wait_for_their_timeout_and_only_the_first_counts()
    {
        var q = new WorkQueueState(0, maxDeliveries: 5, s_visibility);
        Enqueue(q, 3);
        var a = q.AddMember(prefetch: 3);
        AssignAndHand(q, a, 0, 3);

        q.RemoveMember(a, requeueNow: false);
        var b = q.AddMember(prefetch: 10);
        Assert.False(q.TryAssign(999, out _), "nothing goes back before the visibility timeout");

        var again = AssignAll(q, 1_000);
        Assert.All(again, w => Assert.Equal(b, w.MemberId));
        Assert.Equal([(0L, 2), (1L, 1), (2L, 1)], again.Select(w => (w.Offset, w.DeliveryCount)).OrderBy(x => x.Offset));
    }

    private static void Enqueue(WorkQueueState q, int count)
    {
        for (var i = 0; i < count; i++)
        {
            q.Enqueue(i);
        }
    }

    private static List<WorkAssignment> AssignAndHand(WorkQueueState q, int member, long nowMs, int count)
    {
        var handed = new List<WorkAssignment>();
        while (handed.Count < count && q.TryAssign(nowMs, out var w))
        {
            Assert.Equal(member, w.MemberId);
            Assert.True(q.TryHandOver(member, w.Offset, w.DeliveryCount, w.Sequence, nowMs));
            handed.Add(w);
        }

        return handed;
    }

    private static List<WorkAssignment> AssignAll(WorkQueueState q, long nowMs, int? member = null)
    {
        var got = new List<WorkAssignment>();
        while (q.TryAssign(nowMs, out var w))
        {
            Assert.True(member is null || w.MemberId == member);
            got.Add(w);
        }

        return got;
    }
}
