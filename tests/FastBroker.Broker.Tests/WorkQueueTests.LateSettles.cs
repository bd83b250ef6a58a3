using System.Text;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

// Late acks and nacks racing the visibility timeout that dead-letters their message.
public partial class WorkQueueTests
{
    /// <summary>
    /// One delivery each (MaxDeliveries 1) and a visibility timeout of 5 ms: the member's ack, sent as soon as it fetched
    /// the message or (odd offsets) one poll later, races the timeout that dead-letters it. Each message is acked or dead-lettered, never both, and a
    /// dead letter is stored once, with the message's payload, key and headers and its history; the late ack is refused
    /// and so is a nack sent after it (no second dead letter). After a restart nothing comes back.
    /// </summary>
    [Fact]
    public async Task A_late_ack_or_nack_racing_the_timeout_that_dead_letters_a_message_neither_acks_it_nor_dead_letters_it_twice()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        const int N = 200;
        var options = GroupOptions.Default with { Prefetch = 8, MaxDeliveries = 1, VisibilityTimeout = TimeSpan.FromMilliseconds(5) };
        var member = b.JoinGroup("racy", "workers", options);
        for (var i = 0; i < N; i++)
        {
            await b.PublishAsync("racy", Encoding.UTF8.GetBytes($"p{i}"), Encoding.UTF8.GetBytes($"k{i}"), new MessageHeaders().Add("trace-id", $"t{i}"));
        }

        var acked = new HashSet<long>();
        var held = new List<(long Offset, int Count)>(); // odd offsets: acked one poll later, around the timeout
        var c = new Collected();
        var r = new Recorder(c);
        void Settle(long offset, int count)
        {
            if (member.Ack(offset, count))
            {
                Assert.True(acked.Add(offset), $"offset {offset} acked twice");
            }
            else
            {
                Assert.Equal(WorkQueueOutcome.UnknownDelivery, member.Nack(offset, count, requeue: false, error: "late"));
            }
        }

        await Eventually.TrueAsync(
            () =>
            {
                held.ForEach(h => Settle(h.Offset, h.Count));
                held.Clear();
                c.Items.Clear();
                member.Fetch(8, ref r);
                foreach (var (_, offset, payload, count) in c.Items)
                {
                    Assert.Equal((1, $"p{offset}"), (count, payload));
                    if (offset % 2 == 0)
                    {
                        Settle(offset, count);
                    }
                    else
                    {
                        held.Add((offset, count));
                    }
                }

                var g = b.GetSnapshot().Groups.Single();
                return g.Acked + g.DeadLettered == N;
            },
            "every message acked or dead-lettered");

        var group = b.GetSnapshot().Groups.Single();
        Assert.Equal((long)acked.Count, group.Acked);
        await Eventually.TrueAsync(() => b.RetentionFloorOf("racy") == N, "every dead letter stored and marked done");
        Assert.Equal(group.DeadLettered, b.GetSnapshot().Topics.Single(t => t.Name == "racy.dlq").Head);

        using (var dlq = b.Subscribe("racy.dlq", new SubscriptionOptions { Start = StartPosition.Earliest }))
        {
            var dead = new HashSet<long>();
            if (group.DeadLettered > 0)
            {
                await foreach (var m in dlq.ReadAllAsync(new CancellationTokenSource(Eventually.DefaultTimeout).Token))
                {
                    var offset = BitConverter.ToInt64(m.Header("fb-dlq-offset")!);
                    Assert.True(dead.Add(offset), $"offset {offset} dead-lettered twice");
                    Assert.DoesNotContain(offset, acked);
                    Assert.Equal(
                        ($"p{offset}", $"k{offset}", $"t{offset}", "racy", "workers", 1L, "visibility timeout expired"),
                        (m.PayloadText, Encoding.UTF8.GetString(m.Key.Span), m.HeaderText("trace-id"), m.HeaderText("fb-dlq-topic"), m.HeaderText("fb-dlq-group"), BitConverter.ToInt64(m.Header("fb-dlq-deliveries")!), m.HeaderText("fb-dlq-error")));
                    if (dead.Count == group.DeadLettered)
                    {
                        break;
                    }
                }
            }

            Assert.Equal(N, acked.Count + dead.Count);
        }

        member.Dispose();
        await f.RestartAsync();
        using var again = f.Broker.JoinGroup("racy", "workers", options);
        Assert.Equal(N, again.RuntimeGroup.Snapshot().AckFloor);
        Assert.Equal(group.DeadLettered, f.Broker.GetSnapshot().Topics.Single(t => t.Name == "racy.dlq").Head);
    }
}
