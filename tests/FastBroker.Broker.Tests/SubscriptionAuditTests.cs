using static FastBroker.BrokerTests.Consume;

namespace FastBroker.BrokerTests;

/// <summary>
/// Subscriptions checked against what a Kafka or JetStream user expects: a wildcard subscription and topics created
/// after it (also a durable one across a restart), and starts at a time or an offset at the edges.
/// </summary>
public class SubscriptionAuditTests
{
    /// <summary>
    /// docs/broker.md: a topic created after a wildcard subscription is read from its beginning, whatever the
    /// subscription's start; a topic that existed is read from the start asked for (Latest: what comes next).
    /// </summary>
    [Fact]
    public async Task A_wildcard_subscription_at_Latest_reads_a_topic_created_after_it_from_its_first_message()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        await b.PublishAsync("orders.old", BrokerFixture.Utf8("old0"));
        using var sub = b.Subscribe("orders.*", new SubscriptionOptions { Start = StartPosition.Latest });
        Assert.Equal(1, sub.Positions["orders.old"]);

        await b.PublishAsync("orders.old", BrokerFixture.Utf8("old1"));
        await b.PublishAsync("orders.new", BrokerFixture.Utf8("new0")); // created by this publish
        await b.PublishAsync("orders.new", BrokerFixture.Utf8("new1"));
        b.CreateTopic("orders.made");
        await b.PublishAsync("orders.made", BrokerFixture.Utf8("made0"));
        b.CreateTopic("orders.ring", TopicOptions.Default with { Persistent = false });
        await b.PublishAsync("orders.ring", BrokerFixture.Utf8("ring0"));

        var got = Drain(sub, 5);
        Assert.Equal(
            [("orders.made", 0L, "made0"), ("orders.new", 0L, "new0"), ("orders.new", 1L, "new1"), ("orders.old", 1L, "old1"), ("orders.ring", 0L, "ring0")],
            got.Select(x => (x.Topic, x.Offset, x.Payload)).Order());
        Assert.Equal(0, sub.Missed);
    }

    /// <summary>
    /// A durable wildcard subscription across a restart, resumed from its committed positions: a topic it committed in
    /// resumes at the commit (what it was given but had not committed comes again); a topic created after it started
    /// that it was given messages of but never committed in, and one created while it was closed, are read from their
    /// first message (nothing committed there: <c>Committed</c> falls back to <c>Earliest</c>, docs/server.md). So is a
    /// topic it matched from the start, at <c>Latest</c>, and never committed in: its message from before the first
    /// subscribe comes too (a Kafka consumer with <c>auto.offset.reset=latest</c> would skip it, and with it what was
    /// published there while it was closed).
    /// </summary>
    [Fact]
    public async Task A_durable_wildcard_subscription_resumes_each_topic_at_its_commit_and_reads_topics_it_never_committed_in_from_their_first_message()
    {
        await using var f = await BrokerFixture.StartAsync();
        await f.Broker.PublishAsync("orders.old", BrokerFixture.Utf8("old0"));
        var durable = new SubscriptionOptions { DurableName = "audit", Start = StartPosition.Latest };
        using (var sub = f.Broker.Subscribe("orders.*", durable))
        {
            for (var i = 0; i < 5; i++)
            {
                await f.Broker.PublishAsync("orders.new", BrokerFixture.Utf8($"new{i}"));
            }

            await f.Broker.PublishAsync("orders.uncommitted", BrokerFixture.Utf8("u0"));
            var got = Drain(sub, 6);
            Assert.Equal([.. Enumerable.Range(0, 5).Select(i => $"new{i}"), "u0"], got.Select(x => x.Payload).Order());
            sub.Commit("orders.new", 3); // new3 and new4 were given, not processed
        }

        await f.RestartAsync();
        await f.Broker.PublishAsync("orders.new", BrokerFixture.Utf8("new5"));
        await f.Broker.PublishAsync("orders.later", BrokerFixture.Utf8("later0")); // created while the subscription was closed

        using var resumed = f.Broker.Subscribe("orders.*", durable with { Start = StartPosition.Committed });
        await f.Broker.PublishAsync("orders.live", BrokerFixture.Utf8("live0")); // created while it is open again
        var rest = Drain(resumed, 7);
        Assert.Equal(
            [("orders.later", 0L, "later0"), ("orders.live", 0L, "live0"), ("orders.new", 3L, "new3"), ("orders.new", 4L, "new4"), ("orders.new", 5L, "new5"), ("orders.old", 0L, "old0"), ("orders.uncommitted", 0L, "u0")],
            rest.Select(x => (x.Topic, x.Offset, x.Payload)).Order());
        Assert.Equal(0, resumed.Missed);
    }

    /// <summary>
    /// docs/broker.md, a start at a time: the first message stamped at or after it (Kafka's offsetsForTimes), else the
    /// head; a start at an offset past the head starts at the head (the next message published). Both kinds of topic.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Starts_at_a_time_or_offset_at_the_edges_resolve_as_documented(bool persistent)
    {
        var t0 = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var clock = new StepClock(t0);
        await using var f = await BrokerFixture.StartAsync(o => o with { StampClock = clock });
        var b = f.Broker;
        b.CreateTopic("log", TopicOptions.Default with { Persistent = persistent });
        await b.PublishAsync("log", BrokerFixture.Utf8("m0"));
        await b.PublishAsync("log", BrokerFixture.Utf8("m1"));
        clock.Set(t0 + 10);
        await b.PublishAsync("log", BrokerFixture.Utf8("m2"));
        await b.PublishAsync("log", BrokerFixture.Utf8("m3"));
        clock.Set(t0 + 20);
        await b.PublishAsync("log", BrokerFixture.Utf8("m4"));

        using var beforeFirst = b.Subscribe("log", new SubscriptionOptions { Start = StartPosition.AtTime(DateTimeOffset.FromUnixTimeMilliseconds(t0 - 60_000)) });
        using var exactly = b.Subscribe("log", new SubscriptionOptions { Start = StartPosition.AtTime(DateTimeOffset.FromUnixTimeMilliseconds(t0 + 10)) });
        using var between = b.Subscribe("log", new SubscriptionOptions { Start = StartPosition.AtTime(DateTimeOffset.FromUnixTimeMilliseconds(t0 + 5)) });
        using var lastStamp = b.Subscribe("log", new SubscriptionOptions { Start = StartPosition.AtTime(DateTimeOffset.FromUnixTimeMilliseconds(t0 + 20)) });
        using var afterLast = b.Subscribe("log", new SubscriptionOptions { Start = StartPosition.AtTime(DateTimeOffset.FromUnixTimeMilliseconds(t0 + 60_000)) });
        using var pastEnd = b.Subscribe("log", new SubscriptionOptions { Start = StartPosition.AtOffset(1_000) });
        Assert.Equal(
            [0L, 2, 2, 4, 5, 5],
            new[] { beforeFirst, exactly, between, lastStamp, afterLast, pastEnd }.Select(s => s.Positions["log"]));

        clock.Set(t0 + 30);
        await b.PublishAsync("log", BrokerFixture.Utf8("m5"));
        Assert.Equal(["m0", "m1", "m2", "m3", "m4", "m5"], Drain(beforeFirst, 6).Select(x => x.Payload));
        Assert.Equal(["m2", "m3", "m4", "m5"], Drain(exactly, 4).Select(x => x.Payload));
        Assert.Equal(["m2", "m3", "m4", "m5"], Drain(between, 4).Select(x => x.Payload));
        Assert.Equal(["m4", "m5"], Drain(lastStamp, 2).Select(x => x.Payload));
        Assert.Equal(["m5"], Drain(afterLast, 1).Select(x => x.Payload));
        Assert.Equal(["m5"], Drain(pastEnd, 1).Select(x => x.Payload));
        Assert.All(new[] { beforeFirst, exactly, between, lastStamp, afterLast, pastEnd }, s => Assert.Equal(0, s.Missed));
    }

    private sealed class StepClock(long unixMs) : TimeProvider
    {
        private long _unixMs = unixMs;

        public void Set(long unixMs) => Volatile.Write(ref _unixMs, unixMs);

        public override DateTimeOffset GetUtcNow() => DateTimeOffset.FromUnixTimeMilliseconds(Volatile.Read(ref _unixMs));
    }
}
