using System.Text;
using FastBroker.Testing;
using static FastBroker.BrokerTests.Consume;

namespace FastBroker.BrokerTests;

// A group across a restart of its broker (real files): what comes back, with which delivery count, under which prefetch.
public partial class WorkQueueTests
{
    /// <summary>
    /// Acked messages (one of them nacked and redelivered first) do not come back; the unacked ones do, with their
    /// delivery count started at 1 again (docs/broker.md, group state: counts are not persisted), the one delivered twice
    /// included; and the prefetch holds again: a member with prefetch 2 holds two of the four outstanding messages
    /// until it acks one.
    /// </summary>
    [Fact]
    public async Task After_a_restart_only_unacked_messages_come_back_with_their_count_at_1_and_the_prefetch_holds_again()
    {
        await using var f = await BrokerFixture.StartAsync();
        var options = GroupOptions.Default with { Prefetch = 2, MaxDeliveries = 5 };
        for (var i = 0; i < 6; i++)
        {
            await f.Broker.PublishAsync("rjobs", Encoding.UTF8.GetBytes($"j{i}"));
        }

        var member = f.Broker.JoinGroup("rjobs", "g", options);
        Assert.Equal([(0L, 1), (1L, 1)], FetchMany(member, 2, "the first two").Select(x => (x.Offset, x.DeliveryCount)));
        Assert.Equal(WorkQueueOutcome.Requeued, member.Nack(0, 1));
        Assert.Equal(WorkQueueOutcome.Requeued, member.Nack(1, 1));
        Assert.Equal([(0L, 2), (1L, 2)], FetchMany(member, 2, "both again").Select(x => (x.Offset, x.DeliveryCount)).Order());
        Assert.True(member.Ack(1, 2));
        var third = FetchOne(member, "the third");
        Assert.Equal((2L, 1), (third.Offset, third.DeliveryCount));
        Assert.True(member.Ack(2, 1));
        var fourth = FetchOne(member, "the fourth");
        Assert.Equal((3L, 1), (fourth.Offset, fourth.DeliveryCount));

        // Unacked: 0 (delivered twice) and 3 in flight, 4 and 5 never delivered.
        await f.RestartAsync();
        var again = f.Broker.JoinGroup("rjobs", "g", options);
        Assert.Equal([(0L, 1), (3L, 1)], FetchMany(again, 2, "the two unacked in flight before").Select(x => (x.Offset, x.DeliveryCount)).Order());
        await Eventually.TrueAsync(() => again.RuntimeGroup.Snapshot() is { InFlight: 2, Ready: 2 }, "4 and 5 read, waiting for credit");
        var c = new Collected();
        var r = new Recorder(c);
        Assert.Equal(0, again.Fetch(10, ref r)); // the group assigned no more than the prefetch: nothing else is queued
        Assert.Equal(2, again.RuntimeGroup.Snapshot().InFlight);

        Assert.True(again.Ack(0, 1));
        var fifth = FetchOne(again, "the fifth, once one is acked");
        Assert.Equal((4L, 1), (fifth.Offset, fifth.DeliveryCount));
        Assert.Equal(2, again.RuntimeGroup.Snapshot().InFlight);
        Assert.True(again.Ack(3, 1));
        Assert.True(again.Ack(4, 1));
        var last = FetchOne(again, "the last");
        Assert.Equal((5L, 1), (last.Offset, last.DeliveryCount));
        Assert.True(again.Ack(5, 1));
        await Eventually.TrueAsync(() => again.RuntimeGroup.Snapshot() is { AckFloor: 6, InFlight: 0, Ready: 0 }, "all done, 1 and 2 not delivered again");
        again.Dispose();
    }
}
