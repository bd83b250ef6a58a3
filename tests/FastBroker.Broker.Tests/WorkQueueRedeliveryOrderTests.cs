using System.Text;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// A crashed member's deliveries come back at their visibility timeouts. A batch handed at once has one deadline for
/// all of it, and the deadline heap gave equal deadlines back in heap order, so the next member got the batch shuffled:
/// a work queue that is otherwise in offset order (each member's deliveries, the requeues of a leave) was not after a crash.
/// </summary>
public class WorkQueueRedeliveryOrderTests
{
    [Fact]
    public async Task A_crashed_members_deliveries_come_back_in_offset_order()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        const int Count = 64;
        var options = GroupOptions.Default with { Prefetch = Count, VisibilityTimeout = TimeSpan.FromMilliseconds(300) };
        var first = b.JoinGroup("orders", "g", options);
        for (var i = 0; i < Count; i++)
        {
            await b.PublishAsync("orders", Encoding.UTF8.GetBytes($"m{i}"));
        }

        var c = new Collected();
        var r = new Recorder(c);
        Eventually.True(() =>
        {
            first.Fetch(Count - c.Items.Count, ref r);
            return c.Items.Count == Count;
        }, "the first member takes all of them");
        first.Abandon(); // a crash: nothing acked, every delivery waits for its visibility timeout

        var second = b.JoinGroup("orders", "g", options);
        var c2 = new Collected();
        var r2 = new Recorder(c2);
        Eventually.True(() =>
        {
            second.Fetch(Count - c2.Items.Count, ref r2);
            return c2.Items.Count == Count;
        }, "the second member gets all of them back after the timeout");
        var offsets = c2.Items.Select(m => m.Offset).ToArray();
        Assert.True(offsets.SequenceEqual(Enumerable.Range(0, Count).Select(i => (long)i)), string.Join(",", offsets));
        second.Dispose();
    }
}
