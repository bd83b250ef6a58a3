using System.Collections.Concurrent;
using System.Text;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

public class WorkQueueTests
{
    [Fact]
    public async Task Three_members_with_random_acks_nacks_and_crashes_ack_every_message_once_or_dead_letter_it()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        const int Count = 1_500;
        var options = GroupOptions.Default with { Prefetch = 8, VisibilityTimeout = TimeSpan.FromMilliseconds(300), MaxDeliveries = 3 };
        for (var i = 0; i < Count; i++)
        {
            await b.PublishAsync("jobs", Encoding.UTF8.GetBytes($"job{i}"));
        }

        var acked = new ConcurrentDictionary<long, int>();
        var deliveries = new ConcurrentQueue<(long Offset, int Count, DateTime At)>();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));

        async Task RunMember(int seed)
        {
            var rng = new Random(seed);
            var member = b.JoinGroup("jobs", "workers", options);
            var handled = 0;
            while (!cts.IsCancellationRequested && acked.Count + DeadLettered() < Count)
            {
                var batch = new Collected();
                var r = new Recorder(batch);
                if (member.Fetch(4, ref r) == 0)
                {
                    await member.WaitAsync().AsTask().WaitAsync(TimeSpan.FromMilliseconds(50)).ContinueWith(_ => { }, TaskScheduler.Default);
                    continue;
                }

                foreach (var m in batch.Items)
                {
                    deliveries.Enqueue((m.Offset, m.DeliveryCount, DateTime.UtcNow));
                    handled++;
                    var roll = rng.Next(100);
                    if (roll < 75)
                    {
                        if (member.Ack(m.Offset, m.DeliveryCount))
                        {
                            Assert.True(acked.TryAdd(m.Offset, 1), $"offset {m.Offset} acked twice");
                        }
                    }
                    else if (roll < 90)
                    {
                        member.Nack(m.Offset, m.DeliveryCount, requeue: true, error: "transient failure");
                    }

                    // else: drop it on the floor (no ack): the visibility timeout must bring it back.
                }

                if (handled > 150 && rng.Next(100) < 3)
                {
                    // Crash: vanish without acking anything held, then come back as a new member.
                    member.Abandon();
                    member = b.JoinGroup("jobs", "workers", options);
                    handled = 0;
                }
            }

            member.Dispose();
        }

        using var dlq = b.Subscribe("jobs.dlq", new SubscriptionOptions { Start = StartPosition.Earliest });
        var dead = new Collected();
        var deadRecorder = new Recorder(dead);
        var deadMessages = new List<Message>();
        long DeadLettered()
        {
            lock (dead)
            {
                return b.GetSnapshot().Groups.Single(g => g.Group == "workers").DeadLettered;
            }
        }

        await Eventually.Completes(Task.WhenAll(RunMember(1), RunMember(2), RunMember(3)), TimeSpan.FromMinutes(3));
        var group = b.GetSnapshot().Groups.Single(g => g.Group == "workers");
        Assert.Equal(Count, acked.Count + group.DeadLettered);
        Assert.Equal(Count, group.AckFloor);

        // Dead letters arrive on <topic>.dlq with their history.
        await foreach (var m in dlq.ReadAllAsync(cts.Token))
        {
            deadMessages.Add(m);
            if (deadMessages.Count == group.DeadLettered)
            {
                break;
            }
        }

        foreach (var m in deadMessages)
        {
            var offset = BitConverter.ToInt64(m.Header("fb-dlq-offset")!);
            Assert.False(acked.ContainsKey(offset), $"offset {offset} both acked and dead-lettered");
            Assert.Equal(3, BitConverter.ToInt64(m.Header("fb-dlq-deliveries")!));
            Assert.Equal("jobs", m.HeaderText("fb-dlq-topic"));
            Assert.False(string.IsNullOrEmpty(m.HeaderText("fb-dlq-error")));
            Assert.Equal($"job{offset}", m.PayloadText);
        }

        Assert.Equal(deadMessages.Count, deadMessages.Select(m => BitConverter.ToInt64(m.Header("fb-dlq-offset")!)).Distinct().Count());
    }

    [Fact]
    public async Task Each_message_goes_to_one_member_at_a_time_round_robin_over_members_with_credit()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        var options = GroupOptions.Default with { Prefetch = 2 };
        var m1 = b.JoinGroup("tasks", "g", options);
        var m2 = b.JoinGroup("tasks", "g", options);
        for (var i = 0; i < 6; i++)
        {
            await b.PublishAsync("tasks", Encoding.UTF8.GetBytes($"t{i}"));
        }

        var c1 = new Collected();
        var c2 = new Collected();
        var r1 = new Recorder(c1);
        var r2 = new Recorder(c2);
        Eventually.True(() =>
        {
            m1.Fetch(10, ref r1);
            m2.Fetch(10, ref r2);
            return c1.Items.Count + c2.Items.Count == 4;
        }, "4 messages out: 2 members × prefetch 2");
        Assert.Equal(2, c1.Items.Count);
        Assert.Equal(2, c2.Items.Count);
        Assert.Empty(c1.Items.Select(x => x.Offset).Intersect(c2.Items.Select(x => x.Offset)));

        // Acking frees credit: the rest flows.
        foreach (var x in c1.Items)
        {
            Assert.True(m1.Ack(x.Offset, x.DeliveryCount));
        }

        Eventually.True(() => m1.Fetch(10, ref r1) > 0 || c1.Items.Count == 4, "credit returned lets more through");
        m1.Dispose();
        m2.Dispose();
    }

    [Fact]
    public async Task An_unacked_message_is_redelivered_only_after_the_visibility_timeout()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        var visibility = TimeSpan.FromMilliseconds(500);
        var options = GroupOptions.Default with { Prefetch = 1, VisibilityTimeout = visibility };
        var first = b.JoinGroup("once", "g", options);

        // Taken before the publish, so before the delivery's visibility clock starts: a lower bound that holds
        // however slowly this machine runs the test.
        var beforeDelivery = DateTime.UtcNow;
        await b.PublishAsync("once", Encoding.UTF8.GetBytes("x"));
        var c = new Collected();
        var r = new Recorder(c);
        Eventually.True(() => first.Fetch(1, ref r) == 1, "first delivery");
        first.Abandon();

        var second = b.JoinGroup("once", "g", options);
        var c2 = new Collected();
        var r2 = new Recorder(c2);
        Eventually.True(() => second.Fetch(1, ref r2) == 1, "redelivery after the timeout");
        Assert.True(DateTime.UtcNow - beforeDelivery >= visibility, "not redelivered before its visibility timeout");
        Assert.Equal(2, c2.Items[0].DeliveryCount);
        Assert.True(second.Ack(c2.Items[0].Offset, 2));
        Assert.False(first.Ack(c.Items[0].Offset, 1));
        second.Dispose();
    }

    [Fact]
    public async Task Higher_priority_messages_are_dispatched_first()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        var h = new MessageHeaders();
        await b.PublishAsync("prio", Encoding.UTF8.GetBytes("low1"), headers: h.Clear().Add("fb-priority", "0"));
        await b.PublishAsync("prio", Encoding.UTF8.GetBytes("high"), headers: h.Clear().Add("fb-priority", "2"));
        await b.PublishAsync("prio", Encoding.UTF8.GetBytes("low2"));
        var m = b.JoinGroup("prio", "g", GroupOptions.Default with { Prefetch = 10, PriorityLevels = 3 });
        var c = new Collected();
        var r = new Recorder(c);
        Eventually.True(() =>
        {
            m.Fetch(10, ref r);
            return c.Items.Count == 3;
        }, "all three delivered");
        Assert.Equal(["high", "low1", "low2"], c.Items.Select(x => x.Payload));
        m.Dispose();
    }

    [Fact]
    public async Task Group_state_survives_restart_and_only_unacked_messages_come_back()
    {
        await using var f = await BrokerFixture.StartAsync();
        for (var i = 0; i < 10; i++)
        {
            await f.Broker.PublishAsync("durable-jobs", Encoding.UTF8.GetBytes($"j{i}"));
        }

        var member = f.Broker.JoinGroup("durable-jobs", "g", GroupOptions.Default with { Prefetch = 10 });
        var c = new Collected();
        var r = new Recorder(c);
        Eventually.True(() =>
        {
            member.Fetch(10, ref r);
            return c.Items.Count == 10;
        }, "all delivered");
        foreach (var x in c.Items.Where(x => x.Offset % 3 != 0))
        {
            Assert.True(member.Ack(x.Offset, x.DeliveryCount));
        }

        await f.RestartAsync();
        var again = f.Broker.JoinGroup("durable-jobs", "g", GroupOptions.Default with { Prefetch = 10 });
        var c2 = new Collected();
        var r2 = new Recorder(c2);
        Eventually.True(() =>
        {
            again.Fetch(10, ref r2);
            return c2.Items.Count >= 4;
        }, "the unacked come back");
        again.Fetch(10, ref r2);
        Assert.Equal([0L, 3L, 6L, 9L], c2.Items.Select(x => x.Offset).Order());
        again.Dispose();
    }

    [Fact]
    public async Task A_group_name_belongs_to_one_topic()
    {
        await using var f = await BrokerFixture.StartAsync();
        using var member = f.Broker.JoinGroup("jobs.a", "workers");
        var ex = Assert.Throws<BrokerException>(() => f.Broker.JoinGroup("jobs.b", "workers"));
        Assert.Equal(BrokerErrorCode.TopicConflict, ex.Code);
        using var second = f.Broker.JoinGroup("jobs.a", "workers");
        Assert.Equal("jobs.a", second.Topic);
    }

    [Fact]
    public async Task Messages_nacked_with_a_long_delay_do_not_hold_back_fresh_ones()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        using var member = b.JoinGroup("later", "workers", GroupOptions.Default with { Prefetch = 2 });
        for (var i = 0; i < 10; i++)
        {
            await b.PublishAsync("later", Encoding.UTF8.GetBytes($"j{i}"));
        }

        // The first four come back in an hour; the member has credit for the six others now.
        var seen = new List<long>();
        await Eventually.TrueAsync(() =>
        {
            var c = new Collected();
            var r = new Recorder(c);
            member.Fetch(2, ref r);
            foreach (var m in c.Items)
            {
                seen.Add(m.Offset);
                var outcome = m.Offset < 4
                    ? member.Nack(m.Offset, m.DeliveryCount, requeue: true, delay: TimeSpan.FromHours(1))
                    : member.Ack(m.Offset, m.DeliveryCount) ? WorkQueueOutcome.Acked : WorkQueueOutcome.UnknownDelivery;
                Assert.NotEqual(WorkQueueOutcome.UnknownDelivery, outcome);
            }

            return seen.Count == 10;
        }, "every fresh message reaches the member while four wait out their delay");
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), seen);
        Assert.Equal(4, b.GetSnapshot().Groups.Single().Ready);
    }

    [Fact]
    public async Task A_message_that_expires_while_it_waits_for_redelivery_is_not_delivered_again()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        using var member = b.JoinGroup("quotes", "pricers", GroupOptions.Default with { Prefetch = 1 });
        await b.PublishAsync("quotes", Encoding.UTF8.GetBytes("EURUSD 1.0842"), ttl: TimeSpan.FromSeconds(3));

        var first = FetchOne(member, "the quote is delivered while fresh");

        // Back in 4 s, one second after it expired.
        Assert.Equal(WorkQueueOutcome.Requeued, member.Nack(0, first.DeliveryCount, requeue: true, delay: TimeSpan.FromSeconds(4)));
        await Eventually.TrueAsync(() => b.GetSnapshot().Groups.Single().AckFloor == 1, "the expired quote is dropped when it comes due");
        var again = new Collected();
        var r2 = new Recorder(again);
        Assert.Equal(0, member.Fetch(1, ref r2));
        var group = b.GetSnapshot().Groups.Single();
        Assert.Equal((0L, 1L), (group.Acked, group.Expired));
    }

    [Fact]
    public async Task A_dead_letter_the_dlq_topic_refuses_is_kept_and_retried_until_it_is_stored()
    {
        await using var f = await BrokerFixture.StartAsync(o => o with { AutoCreateTopics = false });
        var b = f.Broker;
        b.CreateTopic("jobs");
        using var member = b.JoinGroup("jobs", "workers");
        await b.PublishAsync("jobs", Encoding.UTF8.GetBytes("poison"));
        var got = FetchOne(member, "the job is delivered");

        // jobs.dlq does not exist and may not be created on first use: the dead letter cannot be stored yet.
        Assert.Equal(WorkQueueOutcome.DeadLettered, member.Nack(0, got.DeliveryCount, requeue: false, error: "unparseable"));
        await Eventually.TrueAsync(() => b.GetSnapshot().Groups.Single().DeadLettered == 1, "the group counts it");
        Assert.Equal(0, b.RetentionFloorOf("jobs")); // not done on disk: retention keeps it, a restart redelivers it

        b.CreateTopic("jobs.dlq");
        await Eventually.TrueAsync(() => b.GetSnapshot().Topics.Single(t => t.Name == "jobs.dlq").Head == 1, "the retry stores the dead letter");
        await Eventually.TrueAsync(() => b.RetentionFloorOf("jobs") == 1, "then the job is done on disk");
        using var dlq = b.Subscribe("jobs.dlq", new SubscriptionOptions { Start = StartPosition.Earliest });
        await foreach (var m in dlq.ReadAllAsync(new CancellationTokenSource(Eventually.DefaultTimeout).Token))
        {
            Assert.Equal(("poison", "unparseable"), (m.PayloadText, m.HeaderText("fb-dlq-error")));
            break;
        }
    }

    /// <summary>Waits for the member's next delivery.</summary>
    internal static (string Topic, long Offset, string Payload, int DeliveryCount) FetchOne(WorkQueueMember member, string because)
    {
        var got = new Collected();
        Eventually.True(() =>
        {
            var r = new Recorder(got);
            member.Fetch(1, ref r);
            return got.Items.Count == 1;
        }, because);
        return got.Items[0];
    }
}
