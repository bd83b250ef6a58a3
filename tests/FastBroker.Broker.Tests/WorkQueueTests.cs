using System.Collections.Concurrent;
using System.Text;
using FastBroker.Engine;
using FastBroker.Journal;
using FastBroker.Testing;
using static FastBroker.BrokerTests.Consume;

namespace FastBroker.BrokerTests;

public partial class WorkQueueTests
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
        // however slowly this machine runs the test. The same monotonic clock as the group's (not the wall clock, which
        // NTP may slew), and the group counts whole milliseconds, so its deadline may fall up to 1 ms before
        // delivery + timeout: a fast publish-to-delivery made the exact bound fail once under CI.
        var beforeDelivery = System.Diagnostics.Stopwatch.GetTimestamp();
        await b.PublishAsync("once", Encoding.UTF8.GetBytes("x"));
        var c = new Collected();
        var r = new Recorder(c);
        Eventually.True(() => first.Fetch(1, ref r) == 1, "first delivery");
        first.Abandon();

        var second = b.JoinGroup("once", "g", options);
        var c2 = new Collected();
        var r2 = new Recorder(c2);
        Eventually.True(() => second.Fetch(1, ref r2) == 1, "redelivery after the timeout");
        var waited = System.Diagnostics.Stopwatch.GetElapsedTime(beforeDelivery);
        Assert.True(waited >= visibility - TimeSpan.FromMilliseconds(1), $"redelivered {waited.TotalMilliseconds:F1} ms after the publish, before its visibility timeout");
        Assert.Equal(2, c2.Items[0].DeliveryCount);
        Assert.True(second.Ack(c2.Items[0].Offset, 2));
        Assert.False(first.Ack(c.Items[0].Offset, 1));
        second.Dispose();
    }

    /// <summary>
    /// A group's timer tick that throws (a read of a damaged record, say; here a test hook) runs on a pool thread,
    /// where the exception ended the process, and every client with it. It is logged instead, and the ticks go on:
    /// the visibility timeout still brings the message back.
    /// </summary>
    [Fact]
    public async Task A_timer_tick_that_throws_is_logged_and_the_next_ticks_still_run()
    {
        var lines = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = lines.Enqueue });
        var b = f.Broker;
        var options = GroupOptions.Default with { Prefetch = 1, VisibilityTimeout = TimeSpan.FromMilliseconds(200) };
        var first = b.JoinGroup("ticks", "g", options);
        var throws = 3;
        b.TimerTaskHook = name =>
        {
            if (name == "g" && Interlocked.Decrement(ref throws) >= 0)
            {
                throw new InvalidOperationException("a damaged record");
            }
        };

        await b.PublishAsync("ticks", Encoding.UTF8.GetBytes("x"));
        var c = new Collected();
        var r = new Recorder(c);
        Eventually.True(() => first.Fetch(1, ref r) == 1, "first delivery");
        first.Abandon(); // no ack: only a timer tick can bring it back

        var second = b.JoinGroup("ticks", "g", options);
        var c2 = new Collected();
        var r2 = new Recorder(c2);
        Eventually.True(() => second.Fetch(1, ref r2) == 1, "redelivery by a later tick");
        Assert.Equal(2, c2.Items[0].DeliveryCount);
        Assert.True(b.TimerFailures >= 3, $"{b.TimerFailures} timer failures");
        Assert.Contains(lines, l => l.Contains("work-queue group 'g' of topic 'ticks' failed", StringComparison.Ordinal) && l.Contains("a damaged record", StringComparison.Ordinal));
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
    public async Task A_group_name_stays_with_its_topic_across_a_restart()
    {
        await using var f = await BrokerFixture.StartAsync();
        await f.Broker.PublishAsync("jobs.a", Encoding.UTF8.GetBytes("a0"));
        f.Broker.JoinGroup("jobs.a", "workers").Dispose();

        // After a restart the group is on disk only until a member joins it again: it still belongs to jobs.a, or a
        // join over jobs.b made a second "workers" and the first could then never be joined while the second is loaded
        // (TopicConflict), its unacked work stranded and its floor holding jobs.a's retention for ever.
        await f.RestartAsync();
        var ex = Assert.Throws<BrokerException>(() => f.Broker.JoinGroup("jobs.b", "workers"));
        Assert.Equal(BrokerErrorCode.TopicConflict, ex.Code);
        Assert.False(Directory.Exists(Path.Combine(f.Broker.Options.DataDirectory, "topics", "jobs.b", "groups")));

        using var again = f.Broker.JoinGroup("jobs.a", "workers");
        Assert.Equal("a0", FetchOne(again, "the unacked job comes back").Payload);
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

    /// <summary>
    /// The topic's expired counter counts each expired message once, however many consumers skip it: here two groups
    /// and a subscription, each of which counts its own skips. It used to count each once per group (and never for a
    /// subscription): 6 here instead of 3.
    /// </summary>
    [Fact]
    public async Task An_expired_message_counts_once_for_its_topic_however_many_consumers_skip_it()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        var shortLived = TimeSpan.FromMilliseconds(1);
        await b.PublishAsync("quotes", BrokerFixture.Utf8("stale 0"), ttl: shortLived);
        await b.PublishAsync("quotes", BrokerFixture.Utf8("fresh"));
        await b.PublishAsync("quotes", BrokerFixture.Utf8("stale 2"), ttl: shortLived);
        await b.PublishAsync("quotes", BrokerFixture.Utf8("stale 3"), ttl: shortLived);
        await b.PublishAsync("quotes", BrokerFixture.Utf8("long-lived"), ttl: TimeSpan.FromHours(1));

        // Every consumer reads them once the short-lived ones have expired (a condition on the clock, not a sleep).
        var published = DateTimeOffset.UtcNow;
        await Eventually.TrueAsync(() => DateTimeOffset.UtcNow - published > TimeSpan.FromMilliseconds(20), "clock moves on");
        using var pricers = b.JoinGroup("quotes", "pricers");
        using var auditors = b.JoinGroup("quotes", "auditors");
        using var tape = b.Subscribe("quotes", new SubscriptionOptions { Start = StartPosition.Earliest });
        foreach (var member in new[] { pricers, auditors })
        {
            Assert.Equal("fresh", FetchOne(member, "the fresh quote is delivered").Payload);
            Assert.Equal("long-lived", FetchOne(member, "the long-lived quote is delivered").Payload);
        }

        Assert.Equal(["fresh", "long-lived"], Drain(tape, 2).Select(x => x.Payload));

        var snapshot = b.GetSnapshot();
        Assert.Equal(3, snapshot.Topics.Single(t => t.Name == "quotes").Expired);
        Assert.Equal([3L, 3L], snapshot.Groups.Select(g => g.Expired));
        Assert.Equal(3, tape.Expired);
    }

    [Fact]
    public async Task A_prefetch_as_large_as_an_int_delivers_and_added_credit_saturates()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        using var member = b.JoinGroup("wide", "workers", prefetch: int.MaxValue);
        await b.PublishAsync("wide", Encoding.UTF8.GetBytes("first"));
        var first = FetchOne(member, "a member with the largest prefetch gets the message");
        Assert.True(member.Ack(first.Offset, first.DeliveryCount));

        for (var i = 0; i < 3; i++)
        {
            member.AddPrefetch(int.MaxValue);
        }

        Assert.Equal(int.MaxValue, member.Prefetch);
        await b.PublishAsync("wide", Encoding.UTF8.GetBytes("second"));
        await foreach (var m in member.ReadAllAsync(new CancellationTokenSource(Eventually.DefaultTimeout).Token))
        {
            Assert.Equal("second", m.PayloadText);
            break;
        }

        // Members' prefetches add up to the group's read-ahead: two of 2^30 are more than an int holds.
        using var left = b.JoinGroup("wide2", "pair", prefetch: 1 << 30);
        using var right = b.JoinGroup("wide2", "pair", prefetch: 1 << 30);
        await b.PublishAsync("wide2", Encoding.UTF8.GetBytes("shared"));
        await Eventually.TrueAsync(() => b.GetSnapshot().Groups.Single(g => g.Group == "pair").InFlight == 1, "the pair's group hands the message out");
    }

    [Fact]
    public async Task A_group_state_ahead_of_a_journal_cut_by_a_power_loss_does_not_skip_new_messages()
    {
        await using var f = await BrokerFixture.StartAsync();
        for (var i = 0; i < 10; i++)
        {
            await f.Broker.PublishAsync("cut", Encoding.UTF8.GetBytes($"old{i}"));
        }

        var member = f.Broker.JoinGroup("cut", "g", GroupOptions.Default with { Prefetch = 10 });
        foreach (var x in FetchMany(member, 10, "all ten delivered"))
        {
            Assert.True(member.Ack(x.Offset, x.DeliveryCount));
        }

        Assert.Equal(10, f.Broker.RetentionFloorOf("cut"));

        // Written durability and a power loss: the journal's page cache after record 5 is gone, the group's state
        // page (floor 10) was written back.
        await f.RestartAsync(whileClosed: () => Assert.NotNull(JournalLog.TruncateFrom(
            Path.Combine(f.DataDirectory, "topics", "cut", TopicRegistry.JournalDirectory),
            TopicRegistry.JournalOptionsIn(Path.Combine(f.DataDirectory, "topics", "cut")),
            6,
            "simulated power loss")));
        var dormantFloor = f.Broker.RetentionFloorOf("cut");
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(6 + i, await f.Broker.PublishAsync("cut", Encoding.UTF8.GetBytes($"new{i}")));
        }

        using var again = f.Broker.JoinGroup("cut", "g", GroupOptions.Default with { Prefetch = 10 });
        var delivered = FetchMany(again, 5, "every new message is delivered");
        Assert.Equal(Enumerable.Range(0, 5).Select(i => (6L + i, $"new{i}")), delivered.Select(x => (x.Offset, x.Payload)).Order());
        Assert.True(dormantFloor <= 6, $"before the group was joined again, its floor on disk ({dormantFloor}) claimed offsets the journal lost");
        Assert.Contains(f.Broker.RecoveryReports, r => r.StartsWith("cut: group 'g'", StringComparison.Ordinal));
    }
}
