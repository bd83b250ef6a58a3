using System.Text;
using FastBroker.Protocol;

namespace FastBroker.ServerTests;

/// <summary>
/// Subscriptions over TCP checked against what a Kafka or JetStream user expects: every subscriber at its own pace, a
/// durable one resumed after a broker restart with its uncommitted messages again, and no delivery after UNSUBSCRIBE's OK.
/// </summary>
public class SubscriptionAuditTests
{
    private const int RingSize = 256;

    [Fact]
    public async Task A_stalled_subscriber_never_holds_back_a_fast_one_and_later_gets_ten_rings_of_messages_in_order()
    {
        await using var f = await ServerFixture.StartAsync(broker: o => o with { InputRingSize = RingSize });
        const int N = 10 * RingSize;
        await using var slow = await f.ConnectAsync();
        await slow.SubscribeAsync(1, 1, "stream", 1, Protocol.StartKind.Earliest);
        Assert.Equal(FrameType.Ok, (await slow.ReadAsync()).Type);
        await using var fast = await f.ConnectAsync();
        await fast.SubscribeAsync(1, 1, "stream", N, Protocol.StartKind.Earliest);
        Assert.Equal(FrameType.Ok, (await fast.ReadAsync()).Type);

        await using var pub = await f.ConnectAsync();
        await pub.PublishNumberedAsync("stream", N, perBatch: 128);

        // The fast one gets all of it while the slow one still holds its single credit.
        var all = await fast.ReadDeliveriesAsync(N);
        Assert.Equal(Enumerable.Range(0, N).Select(i => (ulong)i), all.Select(d => d.Offset));
        Assert.Equal(Enumerable.Range(0, N).Select(i => $"m{i}"), all.Select(d => d.Text));
        var first = await slow.ReadDeliveriesAsync(1);
        Assert.Single(await slow.RoundTripAsync()); // nothing more than its credit
        Assert.Equal([1L, N], f.Broker.GetSnapshot().Subscriptions.Select(s => s.Delivered).Order());

        // Given credit, the slow one reads the rest from the journal: every offset once, in order, no DROPPED
        // (ReadDeliveriesAsync fails on any other frame), as in a Kafka consumer group of one per subscriber.
        await slow.SendAsync(w => FrameWriter.WriteCredit(w, 2, 1, N));
        var rest = await slow.ReadDeliveriesAsync(N - 1);
        Assert.Equal(Enumerable.Range(0, N).Select(i => (ulong)i), first.Concat(rest).Select(d => d.Offset));
        Assert.Equal($"m{N - 1}", rest[^1].Text);
        Assert.Single(await slow.RoundTripAsync());
    }

    [Fact]
    public async Task A_durable_subscription_resumes_after_a_broker_restart_at_its_commit_with_what_it_had_not_committed_again()
    {
        await using var f = await ServerFixture.StartAsync();
        for (var i = 0; i < 50; i++)
        {
            await f.Broker.PublishAsync("audit", Encoding.UTF8.GetBytes($"m{i}"));
        }

        await using (var first = await f.ConnectAsync())
        {
            await first.SubscribeAsync(1, 1, "audit", 100, Protocol.StartKind.Committed, durable: "auditor", fallback: Protocol.StartKind.Earliest);
            Assert.Equal(0UL, (await first.ReadAsync()).OkValue);
            Assert.Equal(Enumerable.Range(0, 50).Select(i => $"m{i}"), (await first.ReadDeliveriesAsync(50)).Select(d => d.Text));

            // Processed 30 of the 50 it was given.
            await first.SendAsync(w => FrameWriter.WriteCommit(w, 2, 1, 30));
            var ok = await first.ReadAsync();
            Assert.Equal((FrameType.Ok, 2UL, 30UL), (ok.Type, ok.RequestId, ok.OkValue));
        }

        await f.RestartAsync();
        for (var i = 50; i < 60; i++)
        {
            await f.Broker.PublishAsync("audit", Encoding.UTF8.GetBytes($"m{i}"));
        }

        await using var resumed = await f.ConnectAsync();
        await resumed.SubscribeAsync(1, 1, "audit", 100, Protocol.StartKind.Committed, durable: "auditor", fallback: Protocol.StartKind.Earliest);
        Assert.Equal(30UL, (await resumed.ReadAsync()).OkValue);
        var got = await resumed.ReadDeliveriesAsync(30);
        Assert.Equal(Enumerable.Range(30, 30).Select(i => (ulong)i), got.Select(d => d.Offset));
        Assert.Equal(Enumerable.Range(30, 30).Select(i => $"m{i}"), got.Select(d => d.Text));
        Assert.Single(await resumed.RoundTripAsync());
    }

    /// <summary>
    /// A durable wildcard SUBSCRIBE at <c>Latest</c> reads a topic created after it from its first message; resumed
    /// after a broker restart from <c>Committed</c>, that topic goes on at its commit, and one created while it was
    /// closed is read from its first message (docs/protocol.md, SUBSCRIBE).
    /// </summary>
    [Fact]
    public async Task A_durable_wildcard_subscription_reads_topics_created_after_it_from_their_first_message_across_a_restart()
    {
        await using var f = await ServerFixture.StartAsync();
        await using (var first = await f.ConnectAsync())
        {
            await first.SubscribeAsync(1, 1, "orders.*", 100, Protocol.StartKind.Latest, durable: "d");
            Assert.Equal(FrameType.Ok, (await first.ReadAsync()).Type);
            for (var i = 0; i < 3; i++)
            {
                await f.Broker.PublishAsync("orders.new", Encoding.UTF8.GetBytes($"new{i}"));
            }

            var got = await first.ReadDeliveriesAsync(3);
            Assert.Equal([("orders.new", 0UL, "new0"), ("orders.new", 1UL, "new1"), ("orders.new", 2UL, "new2")], got.Select(d => (d.Topic, d.Offset, d.Text)));
            await first.SendAsync(w => FrameWriter.WriteCommit(w, 2, 1, 2, "orders.new"u8));
            var ok = await first.ReadAsync();
            Assert.Equal((FrameType.Ok, 2UL, 2UL), (ok.Type, ok.RequestId, ok.OkValue));
        }

        await f.RestartAsync();
        await f.Broker.PublishAsync("orders.new", "new3"u8.ToArray());
        await f.Broker.PublishAsync("orders.later", "later0"u8.ToArray());
        await using var resumed = await f.ConnectAsync();
        await resumed.SubscribeAsync(1, 1, "orders.*", 100, Protocol.StartKind.Committed, durable: "d", fallback: Protocol.StartKind.Earliest);
        Assert.Equal(FrameType.Ok, (await resumed.ReadAsync()).Type);
        var rest = await resumed.ReadDeliveriesAsync(3);
        Assert.Equal([("orders.later", 0UL, "later0"), ("orders.new", 2UL, "new2"), ("orders.new", 3UL, "new3")], rest.Select(d => (d.Topic, d.Offset, d.Text)).Order());
        Assert.Single(await resumed.RoundTripAsync());
    }

    /// <summary>
    /// docs/protocol.md, UNSUBSCRIBE: deliveries written before the OK arrive before it; none after it. Checked while
    /// the subscription is being fed as fast as the broker can: a second subscription on the same connection is the
    /// witness that messages published after the OK were delivered to the connection, none of them to the ended one.
    /// </summary>
    [Fact]
    public async Task No_delivery_of_a_subscription_follows_its_UNSUBSCRIBE_OK_under_heavy_delivery()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var c = await f.ConnectAsync();
        await c.SubscribeAsync(c.NextRequestId(), 100, "hot", 100_000_000, Protocol.StartKind.Latest);
        Assert.Equal(FrameType.Ok, (await c.ReadAsync()).Type);

        using var stop = new CancellationTokenSource();
        var published = 0L;
        var publisher = Task.Run(async () =>
        {
            var payload = new byte[16];
            for (var i = 0; i < 2_000_000 && !stop.IsCancellationRequested; i++)
            {
                await f.Broker.PublishAsync("hot", payload);
                Interlocked.Increment(ref published);
            }
        });

        try
        {
            for (uint round = 1; round <= 5; round++)
            {
                await c.SubscribeAsync(c.NextRequestId(), round, "hot", 100_000_000, Protocol.StartKind.Latest);
                var witnessSeen = 0L;
                await c.ReadUntilAsync(x => x.Type == FrameType.Ok);
                var before = 0;
                while (before < 2_000)
                {
                    var x = await c.ReadAsync();
                    before += x.Deliveries.Count(d => d.SubscriptionId == round);
                    Assert.NotEqual(FrameType.Error, x.Type);
                }

                var unsubscribe = c.NextRequestId();
                await c.SendAsync(w => FrameWriter.WriteUnsubscribe(w, unsubscribe, round));
                var untilOk = await c.ReadUntilAsync(x => x.Type == FrameType.Ok && x.RequestId == unsubscribe);
                var lastBeforeOk = untilOk.SelectMany(x => x.Deliveries).Where(d => d.SubscriptionId == 100).Select(d => (long)d.Offset).DefaultIfEmpty(-1).Max();

                // Read on until the witness has had 2,000 messages published after the OK: none of the ended one's.
                var head = f.Broker.GetSnapshot().Topics.Single(t => t.Name == "hot").Head;
                var target = Math.Max(head, lastBeforeOk + 1) + 2_000;
                while (witnessSeen < target)
                {
                    var x = await c.ReadAsync();
                    Assert.NotEqual(FrameType.Error, x.Type);
                    var stray = x.Deliveries.FirstOrDefault(d => d.SubscriptionId == round);
                    Assert.True(stray is null, $"round {round}: a delivery of subscription {round} after its UNSUBSCRIBE's OK: {stray}");
                    witnessSeen = Math.Max(witnessSeen, x.Deliveries.Where(d => d.SubscriptionId == 100).Select(d => (long)d.Offset + 1).DefaultIfEmpty(0).Max());
                }
            }
        }
        finally
        {
            await stop.CancelAsync();
            await publisher;
        }

        Assert.True(Interlocked.Read(ref published) > 0);
    }
}
