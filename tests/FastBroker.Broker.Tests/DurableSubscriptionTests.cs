using System.Text;
using FastBroker.Engine;
using FastBroker.Journal;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

public class DurableSubscriptionTests
{
    [Fact]
    public async Task A_durable_subscription_resumes_from_its_committed_position_after_restart()
    {
        await using var f = await BrokerFixture.StartAsync();
        for (var i = 0; i < 100; i++)
        {
            await f.Broker.PublishAsync("audit", Encoding.UTF8.GetBytes($"e{i}"));
        }

        var options = new SubscriptionOptions { DurableName = "auditor", Start = StartPosition.Committed };
        using (var sub = f.Broker.Subscribe("audit", options))
        {
            var c = new Collected();
            var r = new Recorder(c);
            Eventually.True(() =>
            {
                sub.Fetch(30 - c.Items.Count, ref r);
                return c.Items.Count == 30;
            }, "30 read");
            sub.Commit();
            Assert.Equal(30, sub.CommittedOffset("audit"));
        }

        await f.RestartAsync();
        using var resumed = f.Broker.Subscribe("audit", options);
        var c2 = new Collected();
        var r2 = new Recorder(c2);
        Eventually.True(() =>
        {
            resumed.Fetch(1000, ref r2);
            return c2.Items.Count == 70;
        }, "the remaining 70 arrive");
        Assert.Equal("e30", c2.Items[0].Payload);
    }

    /// <summary>
    /// One position file per durable name, one writer: two subscriptions open with one name each kept their own index
    /// over the file, so the second's first commit added a second entry for the topic, and a restart resumed from the
    /// last entry in the file (7, committed before the 5 that was committed last).
    /// </summary>
    [Fact]
    public async Task A_durable_name_is_open_in_one_subscription_at_a_time_and_free_again_once_it_is_disposed()
    {
        await using var f = await BrokerFixture.StartAsync();
        for (var i = 0; i < 10; i++)
        {
            await f.Broker.PublishAsync("audit", Encoding.UTF8.GetBytes($"e{i}"));
        }

        var options = new SubscriptionOptions { DurableName = "auditor", Start = StartPosition.Committed };
        var first = f.Broker.Subscribe("audit", options);
        try
        {
            var refused = Assert.Throws<BrokerException>(() =>
            {
                using var second = f.Broker.Subscribe("audit", options);
                second.Commit("audit", 7);
                first.Commit("audit", 5);
            });
            Assert.Equal(BrokerErrorCode.DurableNameInUse, refused.Code);
            Assert.Contains("auditor", refused.Message, StringComparison.Ordinal);

            // Also through another pattern, inline, or starting elsewhere: the name is the file.
            Assert.Equal(BrokerErrorCode.DurableNameInUse, Assert.Throws<BrokerException>(() => f.Broker.Subscribe(">", options with { Start = StartPosition.Earliest })).Code);
            first.Commit("audit", 5);
        }
        finally
        {
            first.Dispose();
        }

        // Free again: the next one reads what the first committed, and commits over the same entry.
        using (var again = f.Broker.Subscribe("audit", options))
        {
            Assert.Equal(5, again.CommittedOffset("audit"));
            again.Commit("audit", 6);
        }

        await f.RestartAsync();
        using var resumed = f.Broker.Subscribe("audit", options);
        Assert.Equal(6, resumed.CommittedOffset("audit"));
        Assert.Equal(6, resumed.Positions["audit"]);

        // One entry for the topic in the file (slot 1 of the position file is its entry count).
        var file = File.ReadAllBytes(Path.Combine(f.DataDirectory, "subscriptions", "auditor.pos"));
        Assert.Equal(1, BitConverter.ToInt64(file, 8));
    }

    [Fact]
    public async Task ReadAllAsync_auto_commits_only_what_the_loop_finished_and_keeps_what_it_was_not_given()
    {
        await using var f = await BrokerFixture.StartAsync();
        for (var i = 0; i < 10; i++)
        {
            await f.Broker.PublishAsync("orders", Encoding.UTF8.GetBytes($"o{i}"));
        }

        var options = new SubscriptionOptions { DurableName = "billing", Start = StartPosition.Committed, AutoCommit = true, BatchSize = 4 };
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using (var sub = f.Broker.Subscribe("orders", options))
        {
            var got = new List<string>();
            await foreach (var m in sub.ReadAllAsync(cts.Token))
            {
                got.Add(m.PayloadText);
                if (got.Count == 6)
                {
                    break; // o4 and o5 were given, o6 and o7 were fetched with them but never given
                }
            }

            Assert.Equal(["o0", "o1", "o2", "o3", "o4", "o5"], got);

            // The loop asked for the message after o3: it was done with the first batch. o5 it may not have finished.
            // Before, the fetch of o4…o7 had committed 8 and moved on: a restart skipped o4…o7, and this subscription too.
            Assert.Equal(4, sub.CommittedOffset("orders"));
            Assert.Equal(6, sub.Positions["orders"]);
            Assert.Equal(6, sub.Delivered);

            await foreach (var m in sub.ReadAllAsync(cts.Token))
            {
                Assert.Equal("o6", m.PayloadText);
                break;
            }

            Assert.Equal(4, sub.CommittedOffset("orders"));
            Assert.Equal(7, sub.Positions["orders"]);
        }

        await f.RestartAsync();
        using var resumed = f.Broker.Subscribe("orders", options);
        Assert.Equal(Enumerable.Range(4, 6).Select(i => $"o{i}"), Consume.Drain(resumed, 6).Select(x => x.Payload));
    }

    /// <summary>
    /// ReadAllAsync checked its token only between batches: a loop that cancelled after its first message was still
    /// given the other 7 of the batch (up to BatchSize - 1) before the cancellation surfaced.
    /// </summary>
    [Fact]
    public async Task ReadAllAsync_gives_no_message_after_its_token_is_cancelled_and_keeps_the_rest_of_the_batch()
    {
        await using var f = await BrokerFixture.StartAsync();
        for (var i = 0; i < 10; i++)
        {
            await f.Broker.PublishAsync("orders", Encoding.UTF8.GetBytes($"o{i}"));
        }

        var options = new SubscriptionOptions { DurableName = "billing", Start = StartPosition.Earliest, AutoCommit = true, BatchSize = 8 };
        using var sub = f.Broker.Subscribe("orders", options);
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token);
        var afterCancel = new List<string>();
        var first = "";
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var m in sub.ReadAllAsync(cts.Token))
            {
                if (cts.IsCancellationRequested)
                {
                    afterCancel.Add(m.PayloadText);
                    continue;
                }

                first = m.PayloadText;
                await cts.CancelAsync();
            }
        });

        Assert.Equal("o0", first);
        Assert.Empty(afterCancel);
        Assert.Equal(1, sub.Delivered);
        Assert.Equal(1, sub.Positions["orders"]); // the rest of the batch is given back, not committed
        Assert.Null(sub.CommittedOffset("orders"));
        await foreach (var m in sub.ReadAllAsync(deadline.Token))
        {
            Assert.Equal("o1", m.PayloadText);
            break;
        }
    }

    [Fact]
    public async Task A_handler_that_throws_gets_the_same_message_again_and_what_it_finished_counts_as_delivered()
    {
        await using var f = await BrokerFixture.StartAsync();
        for (var i = 0; i < 10; i++)
        {
            await f.Broker.PublishAsync("orders", Encoding.UTF8.GetBytes($"o{i}"));
        }

        using var sub = f.Broker.Subscribe("orders", new SubscriptionOptions { DurableName = "billing", Start = StartPosition.Earliest, AutoCommit = true });
        var seen = new Collected();
        var failing = new FailsOn("o2", seen);
        Eventually.True(() => sub.Lag == 10, "the ten messages are readable");
        var error = Assert.Throws<InvalidOperationException>(() => sub.Fetch(100, ref failing));
        Assert.Equal("o2 failed", error.Message);

        // o0 and o1 were handled; o2 was not. Before, Delivered stayed 0 and the cursor had moved past o2: the next
        // fetch never gave it again, and its auto-commit committed past it.
        Assert.Equal(["o0", "o1", "o2"], seen.Items.Select(x => x.Payload));
        Assert.Equal(2, sub.Delivered);
        Assert.Equal(2, sub.Positions["orders"]);
        Assert.Null(sub.CommittedOffset("orders")); // no commit from a fetch whose handler failed

        var rest = Consume.Drain(sub, 8);
        Assert.Equal(Enumerable.Range(2, 8).Select(i => $"o{i}"), rest.Select(x => x.Payload));
        Assert.Equal(10, sub.Delivered);
        Assert.Equal(10, sub.CommittedOffset("orders"));
    }

    /// <summary>Records each message, and throws on the one with <paramref name="payload"/>.</summary>
    private readonly struct FailsOn(string payload, Collected seen) : IMessageHandler
    {
        public void OnMessage(scoped in MessageView message)
        {
            var text = Encoding.UTF8.GetString(message.Payload);
            seen.Items.Add((message.Topic, message.Offset, text, 0));
            if (text == payload)
            {
                throw new InvalidOperationException($"{text} failed");
            }
        }
    }

    /// <summary>
    /// Written durability and a power loss: the journal's page cache after record 5 is gone, the position's page
    /// (10 committed) was written back. The new messages at offsets 6 on must be delivered, not skipped up to 10.
    /// </summary>
    [Fact]
    public async Task A_position_ahead_of_a_journal_cut_by_a_power_loss_does_not_skip_new_messages()
    {
        await using var f = await BrokerFixture.StartAsync();
        for (var i = 0; i < 10; i++)
        {
            await f.Broker.PublishAsync("cut", Encoding.UTF8.GetBytes($"old{i}"));
        }

        var options = new SubscriptionOptions { DurableName = "reader", Start = StartPosition.Committed };
        using (var sub = f.Broker.Subscribe("cut", options))
        {
            sub.Commit("cut", 10);
        }

        await f.RestartAsync(whileClosed: () => Assert.NotNull(JournalLog.TruncateFrom(
            Path.Combine(f.DataDirectory, "topics", "cut", TopicRegistry.JournalDirectory),
            TopicRegistry.JournalOptionsIn(Path.Combine(f.DataDirectory, "topics", "cut")),
            6,
            "simulated power loss")));
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(6 + i, await f.Broker.PublishAsync("cut", Encoding.UTF8.GetBytes($"new{i}")));
        }

        using var resumed = f.Broker.Subscribe("cut", options);
        Assert.Equal(6, resumed.CommittedOffset("cut"));
        var delivered = Consume.Drain(resumed, 5);
        Assert.Equal(Enumerable.Range(0, 5).Select(i => (6L + i, $"new{i}")), delivered.Select(x => (x.Offset, x.Payload)));
        Assert.Contains(f.Broker.RecoveryReports, r => r.StartsWith("cut: subscription 'reader': its committed position 10 was ahead of the journal, which ends at offset 6", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Messages_confirmed_before_a_clean_restart_are_all_there()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("safe", TopicOptions.Default with { Durability = Durability.Fsynced, SegmentBytes = 4 << 20 });
        var offsets = new List<long>();
        for (var i = 0; i < 200; i++)
        {
            offsets.Add(await f.Broker.PublishAsync("safe", Encoding.UTF8.GetBytes($"s{i}")));
        }

        Assert.Equal(Enumerable.Range(0, 200).Select(i => (long)i), offsets);
        await f.RestartAsync();
        using var sub = f.Broker.Subscribe("safe", new SubscriptionOptions { Start = StartPosition.Earliest });
        var c = new Collected();
        var r = new Recorder(c);
        Eventually.True(() =>
        {
            sub.Fetch(1000, ref r);
            return c.Items.Count == 200;
        }, "all 200 after restart");
        Assert.Equal("s199", c.Items[^1].Payload);
        Assert.Equal(200, f.Broker.GetSnapshot().Topics.Single(t => t.Name == "safe").Head);
    }

    [Fact]
    public async Task Without_sealed_segment_verification_a_restart_scans_only_the_tail_and_reads_everything()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("big", TopicOptions.Default with { SegmentBytes = 64 << 10, MaxMessageBytes = 16 << 10 });
        for (var i = 0; i < 2000; i++)
        {
            await f.Broker.PublishAsync("big", Encoding.UTF8.GetBytes($"b{i}").Concat(new byte[100]).ToArray());
        }

        await f.RestartAsync(o => o with { VerifySealedSegmentsOnOpen = false });
        Assert.True(f.Broker.Topics.TryGet("big", out var topic));
        var recovery = topic.Journal!.Recovery;
        Assert.True(recovery.SegmentCount >= 3 && recovery.SegmentsVerified == 1, $"only the unsealed tail is verified: {recovery}");

        using (var sub = f.Broker.Subscribe("big", new SubscriptionOptions { Start = StartPosition.Earliest }))
        {
            var c = new Collected();
            var r = new Recorder(c);
            Eventually.True(() =>
            {
                sub.Fetch(1000, ref r);
                return c.Items.Count == 2000;
            }, "all 2000 after the restart");
            Assert.StartsWith("b1999", c.Items[^1].Payload, StringComparison.Ordinal);
        }

        await f.RestartAsync();
        Assert.True(f.Broker.Topics.TryGet("big", out topic));
        Assert.True(topic.Journal!.Recovery.SegmentsVerified == topic.Journal.Recovery.SegmentCount, $"the default verifies every segment: {topic.Journal.Recovery}");
    }
}
