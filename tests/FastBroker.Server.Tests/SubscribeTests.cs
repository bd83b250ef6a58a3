using System.Text;
using FastBroker.Protocol;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ServerTests;

public class SubscribeTests
{
    [Fact]
    public async Task Subscribe_delivers_messages_exactly_as_published_with_envelope_fields()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var pub = await f.ConnectAsync(ProtocolFeatures.None);
        var before = DateTimeOffset.UtcNow.AddMinutes(-1).ToUnixTimeMilliseconds() * 1_000_000;
        await pub.PublishAsync(1, "orders.eu", "hello", headers: Headers.Of(("trace", "ab")), key: "k1");
        await pub.PublishAsync(2, "orders.eu", "world");
        await pub.ReadConfirmsAsync([1, 2]);

        await using var sub = await f.ConnectAsync(ProtocolFeatures.None);
        await sub.SubscribeAsync(10, 7, "orders.eu", 100, Protocol.StartKind.Earliest);
        var ok = await sub.ReadAsync();
        Assert.Equal((FrameType.Ok, 10UL, 0UL), (ok.Type, ok.RequestId, ok.OkValue));
        var d = await sub.ReadDeliveriesAsync(2);

        Assert.Equal(new[] { "hello", "world" }, d.Select(x => x.Text));
        Assert.All(d, x => Assert.Equal((7u, 1u, "orders.eu"), (x.SubscriptionId, x.DeliveryCount, x.Topic)));
        Assert.Equal(new[] { 0UL, 1UL }, d.Select(x => x.Offset));
        Assert.Equal("k1", Encoding.UTF8.GetString(d[0].Key));
        Assert.Equal("ab", Headers.Get(d[0].Headers, "trace"));
        Assert.Empty(d[1].Key);
        Assert.InRange(d[0].TimestampNs, before, DateTimeOffset.UtcNow.AddMinutes(1).ToUnixTimeMilliseconds() * 1_000_000);
        Assert.Equal(0, d[0].TimestampNs % 1_000_000);

        // Live: a message published now arrives too.
        await pub.PublishAsync(3, "orders.eu", "live");
        Assert.Equal("live", (await sub.ReadDeliveriesAsync(1))[0].Text);
    }

    /// <summary>
    /// The OK of a SUBSCRIBE comes before the subscription's first delivery, also when the SUBSCRIBE is handled while the
    /// connection's writer is in the middle of a pass. The writer is held (a test seam) after it wrote the replies of its
    /// pass (a PONG) until the SUBSCRIBE has queued its OK and added its consumer; the pass then goes on to the
    /// deliveries. Before, the pass read the consumers there, after its replies, so it wrote the two stored messages
    /// and the OK only in the next pass.
    /// </summary>
    [Fact]
    public async Task The_OK_of_a_SUBSCRIBE_precedes_its_first_delivery_also_when_the_writer_is_mid_pass()
    {
        await using var f = await ServerFixture.StartAsync();
        await f.Broker.PublishAsync("orders.eu", "first"u8.ToArray());
        await f.Broker.PublishAsync("orders.eu", "second"u8.ToArray());
        await using var sub = await f.ConnectAsync(ProtocolFeatures.None);
        var session = Assert.Single(f.Server.Sessions);

        var armed = 1;
        using var held = new ManualResetEventSlim();
        session.BeforeDeliveriesHook = s =>
        {
            if (Interlocked.Exchange(ref armed, 0) == 1)
            {
                held.Set();
                SpinWait.SpinUntil(() => s.ConsumerCount > 0, TimeSpan.FromSeconds(30));
            }
        };

        await sub.SendAsync(w => FrameWriter.WritePing(w, 1));
        Assert.True(held.Wait(TimeSpan.FromSeconds(30)), "the writer's pass for the PONG reached the seam");
        await sub.SubscribeAsync(2, 7, "orders.eu", 100, Protocol.StartKind.Earliest);

        var pong = await sub.ReadAsync();
        Assert.Equal((FrameType.Pong, 1UL), (pong.Type, pong.RequestId));
        var ok = await sub.ReadAsync();
        Assert.Equal((FrameType.Ok, 2UL), (ok.Type, ok.RequestId));
        Assert.Equal(["first", "second"], (await sub.ReadDeliveriesAsync(2)).Select(d => d.Text));
    }

    [Fact]
    public async Task With_batching_granted_deliveries_come_as_DELIVER_BATCH_in_order()
    {
        await using var f = await ServerFixture.StartAsync();
        for (var i = 0; i < 300; i++)
        {
            await f.Broker.PublishAsync("ticks", Encoding.UTF8.GetBytes($"t{i}"));
        }

        await using var sub = await f.ConnectAsync(ProtocolFeatures.Batching);
        await sub.SubscribeAsync(1, 3, "ticks", 1000, Protocol.StartKind.Earliest);
        Assert.Equal(FrameType.Ok, (await sub.ReadAsync()).Type);
        var frames = new List<ServerFrame>();
        var deliveries = new List<Delivery>();
        while (deliveries.Count < 300)
        {
            var frame = await sub.ReadAsync();
            frames.Add(frame);
            deliveries.AddRange(frame.Deliveries);
        }

        Assert.All(frames, x => Assert.Equal(FrameType.DeliverBatch, x.Type));
        Assert.True(frames.Count < 300, "several messages per DELIVER_BATCH");
        Assert.Equal(Enumerable.Range(0, 300).Select(i => (ulong)i), deliveries.Select(x => x.Offset));
        Assert.Equal(Enumerable.Range(0, 300).Select(i => $"t{i}"), deliveries.Select(x => x.Text));
    }

    [Fact]
    public async Task Credit_bounds_deliveries_until_more_credit_arrives()
    {
        await using var f = await ServerFixture.StartAsync();
        for (var i = 0; i < 3; i++)
        {
            await f.Broker.PublishAsync("c", Encoding.UTF8.GetBytes($"m{i}"));
        }

        await using var sub = await f.ConnectAsync();
        await sub.SubscribeAsync(1, 1, "c", 1, Protocol.StartKind.Earliest);
        Assert.Equal(FrameType.Ok, (await sub.ReadAsync()).Type);
        var first = await sub.ReadDeliveriesAsync(1);
        Assert.Equal("m0", first.Single().Text);

        // Everything the server wrote before answering a PING: no second delivery, and the broker handed out one.
        Assert.Single(await sub.RoundTripAsync());
        Assert.Equal(1, f.Broker.GetSnapshot().Subscriptions.Single().Delivered);

        await sub.SendAsync(w => FrameWriter.WriteCredit(w, 0, 1, 2));
        var rest = await sub.ReadDeliveriesAsync(2);
        Assert.Equal(new[] { "m1", "m2" }, rest.Select(x => x.Text));
    }

    [Fact]
    public async Task Every_subscriber_of_a_topic_gets_every_message_in_order()
    {
        await using var f = await ServerFixture.StartAsync();
        var subs = new List<RawConnection>();
        for (var i = 0; i < 3; i++)
        {
            var s = await f.ConnectAsync(i == 0 ? ProtocolFeatures.None : ProtocolFeatures.Batching);
            await s.SubscribeAsync(1, (uint)(10 + i), "fan.>", 10_000, Protocol.StartKind.Latest);
            Assert.Equal(FrameType.Ok, (await s.ReadAsync()).Type);
            subs.Add(s);
        }

        await using var pub = await f.ConnectAsync();
        const int N = 500;
        await pub.SendAsync(w =>
        {
            for (var i = 0; i < N; i++)
            {
                FrameWriter.WritePublish(w, (ulong)(i + 1), i % 2 == 0 ? "fan.a"u8 : "fan.b"u8, Encoding.UTF8.GetBytes($"m{i}"));
            }
        });
        await pub.ReadConfirmsAsync([.. Enumerable.Range(1, N).Select(i => (ulong)i)]);

        for (var i = 0; i < 3; i++)
        {
            var d = await subs[i].ReadDeliveriesAsync(N);
            Assert.All(d, x => Assert.Equal((uint)(10 + i), x.SubscriptionId));
            Assert.Equal(Enumerable.Range(0, N / 2).Select(k => $"m{2 * k}"), d.Where(x => x.Topic == "fan.a").Select(x => x.Text));
            Assert.Equal(Enumerable.Range(0, N / 2).Select(k => $"m{(2 * k) + 1}"), d.Where(x => x.Topic == "fan.b").Select(x => x.Text));
            await subs[i].DisposeAsync();
        }
    }

    [Fact]
    public async Task A_durable_subscription_commits_and_resumes_from_the_committed_position_on_a_new_connection()
    {
        await using var f = await ServerFixture.StartAsync();
        for (var i = 0; i < 5; i++)
        {
            await f.Broker.PublishAsync("jobs", Encoding.UTF8.GetBytes($"m{i}"));
        }

        await using (var first = await f.ConnectAsync())
        {
            await first.SubscribeAsync(1, 1, "jobs", 3, Protocol.StartKind.Committed, durable: "worker", fallback: Protocol.StartKind.Earliest);
            Assert.Equal(0UL, (await first.ReadAsync()).OkValue);
            var d = await first.ReadDeliveriesAsync(3);
            Assert.Equal(new[] { "m0", "m1", "m2" }, d.Select(x => x.Text));
            await first.SendAsync(w => FrameWriter.WriteCommit(w, 2, 1, 3));
            var ok = await first.ReadAsync();
            Assert.Equal((FrameType.Ok, 2UL, 3UL), (ok.Type, ok.RequestId, ok.OkValue));
        }

        await f.Broker.PublishAsync("jobs", "m5"u8.ToArray());
        await using var second = await f.ConnectAsync();
        await second.SubscribeAsync(1, 9, "jobs", 100, Protocol.StartKind.Committed, durable: "worker", fallback: Protocol.StartKind.Earliest);
        Assert.Equal(3UL, (await second.ReadAsync()).OkValue);
        Assert.Equal(new[] { "m3", "m4", "m5" }, (await second.ReadDeliveriesAsync(3)).Select(x => x.Text));
    }

    /// <summary>
    /// One open subscription per durable name (the broker refuses a second). Over TCP a second connection takes the name
    /// over, as a new producer instance fences the old one: the one whose connection the server still holds, possibly
    /// dead without a FIN, ends with SUBSCRIPTION_ENDED. A name held on the same connection or by an embedded
    /// subscription is refused.
    /// </summary>
    [Fact]
    public async Task A_durable_name_open_on_another_connection_is_taken_over_and_that_subscription_ends()
    {
        await using var f = await ServerFixture.StartAsync();
        for (var i = 0; i < 5; i++)
        {
            await f.Broker.PublishAsync("jobs", Encoding.UTF8.GetBytes($"m{i}"));
        }

        await using var first = await f.ConnectAsync();
        await first.SubscribeAsync(1, 1, "jobs", 2, Protocol.StartKind.Committed, durable: "worker", fallback: Protocol.StartKind.Earliest);
        Assert.Equal(0UL, (await first.ReadAsync()).OkValue);
        Assert.Equal(["m0", "m1"], (await first.ReadDeliveriesAsync(2)).Select(x => x.Text));
        await first.SendAsync(w => FrameWriter.WriteCommit(w, 2, 1, 2));
        var committed = await first.ReadAsync();
        Assert.Equal((FrameType.Ok, 2UL, 2UL), (committed.Type, committed.RequestId, committed.OkValue));

        await using var second = await f.ConnectAsync();
        await second.SubscribeAsync(1, 9, "jobs", 100, Protocol.StartKind.Committed, durable: "worker", fallback: Protocol.StartKind.Earliest);
        var taken = await second.ReadAsync();
        Assert.Equal((FrameType.Ok, 1UL, 2UL), (taken.Type, taken.RequestId, taken.OkValue)); // from the first's commit
        Assert.Equal(["m2", "m3", "m4"], (await second.ReadDeliveriesAsync(3)).Select(x => x.Text));

        var ended = (await first.ReadUntilAsync(x => x.Type == FrameType.Error))[^1];
        Assert.True(ended.SubscriptionEnded);
        Assert.Equal((ErrorCode.DurableNameInUse, 1u, 0UL), (ended.ErrorCode, ended.ErrorSubscriptionId, ended.RequestId));
        await first.SendAsync(w => FrameWriter.WriteCommit(w, 3, 1, 3));
        Assert.Equal(ErrorCode.UnknownSubscription, (await first.ReadUntilAsync(x => x.Type == FrameType.Error))[^1].ErrorCode);

        // The same name twice on one connection, or held by an embedded subscription: refused, the holder untouched.
        await second.SubscribeAsync(2, 10, "jobs", 100, Protocol.StartKind.Earliest, durable: "worker");
        var refused = (await second.ReadUntilAsync(x => x.RequestId == 2))[^1];
        Assert.Equal((FrameType.Error, ErrorCode.DurableNameInUse), (refused.Type, refused.ErrorCode));
        using (f.Broker.Subscribe("jobs", new SubscriptionOptions { DurableName = "embedded" }))
        {
            await second.SubscribeAsync(3, 11, "jobs", 100, Protocol.StartKind.Earliest, durable: "embedded");
            refused = (await second.ReadUntilAsync(x => x.RequestId == 3))[^1];
            Assert.Equal((FrameType.Error, ErrorCode.DurableNameInUse), (refused.Type, refused.ErrorCode));
        }

        await second.SendAsync(w => FrameWriter.WriteCommit(w, 4, 9, 4));
        var ok = (await second.ReadUntilAsync(x => x.RequestId == 4))[^1];
        Assert.Equal((FrameType.Ok, 4UL), (ok.Type, ok.OkValue));
        Assert.Single(f.Broker.GetSnapshot().Subscriptions, s => s.DurableName == "worker");
    }

    [Fact]
    public async Task Committed_with_nothing_committed_falls_back_to_latest_or_earliest_as_asked()
    {
        await using var f = await ServerFixture.StartAsync();
        await f.Broker.PublishAsync("fb", "old"u8.ToArray());
        await using var c = await f.ConnectAsync();

        await c.SubscribeAsync(1, 1, "fb", 10, Protocol.StartKind.Committed, durable: "late", fallback: Protocol.StartKind.Latest);
        Assert.Equal(1UL, (await c.ReadAsync()).OkValue);
        await c.SubscribeAsync(2, 2, "fb", 10, Protocol.StartKind.Committed, durable: "early", fallback: Protocol.StartKind.Earliest);
        var frames = await c.ReadUntilAsync(x => x.Type == FrameType.Ok && x.RequestId == 2);
        Assert.Equal(0UL, frames[^1].OkValue);
        var d = await c.ReadDeliveriesAsync(1);
        Assert.Equal((2u, "old"), (d[0].SubscriptionId, d[0].Text));
        Assert.Single(await c.RoundTripAsync());
    }

    [Fact]
    public async Task Header_filters_deliver_only_matching_messages()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var pub = await f.ConnectAsync();
        await pub.PublishAsync(1, "cars", "a", headers: Headers.Of(("color", "red"), ("size", "s")));
        await pub.PublishAsync(2, "cars", "b", headers: Headers.Of(("color", "blue")));
        await pub.PublishAsync(3, "cars", "c", headers: Headers.Of(("size", "s"), ("color", "red")));
        await pub.PublishAsync(4, "cars", "d");
        await pub.ReadConfirmsAsync([1, 2, 3, 4]);

        await using var sub = await f.ConnectAsync();
        await sub.SubscribeAsync(1, 1, "cars", 100, Protocol.StartKind.Earliest, filters: Headers.Of(("color", "red")));
        Assert.Equal(FrameType.Ok, (await sub.ReadAsync()).Type);
        var d = await sub.ReadDeliveriesAsync(2);
        Assert.Equal(new[] { "a", "c" }, d.Select(x => x.Text));
        Assert.Equal(new[] { 0UL, 2UL }, d.Select(x => x.Offset));
    }

    /// <summary>
    /// fb-producer and fb-expires carry binary values the broker writes per message (docs/protocol.md, section 9): a
    /// filter on them is refused with InvalidArgument in the embedded broker's words after "SUBSCRIBE: ", as the .NET
    /// client refuses it before sending; the connection stays open.
    /// </summary>
    [Fact]
    public async Task A_filter_on_a_header_the_broker_writes_is_refused_in_the_embedded_brokers_words()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var c = await f.ConnectAsync();
        foreach (var name in new[] { "fb-producer", "fb-expires" })
        {
            var embedded = Assert.Throws<BrokerException>(() => f.Broker.Subscribe("cars", new SubscriptionOptions { HeaderFilters = new Dictionary<string, string> { [name] = "1" } }));
            Assert.Equal(BrokerErrorCode.InvalidArgument, embedded.Code);
            await c.SubscribeAsync(1, 1, "cars", 100, filters: Headers.Of(("color", "red"), (name, "1")));
            var error = await c.ReadAsync();
            Assert.Equal((FrameType.Error, ErrorCode.InvalidArgument, false), (error.Type, error.ErrorCode, error.CloseConnection));
            Assert.Equal("SUBSCRIBE: " + embedded.Message, error.ErrorReason);
        }

        Assert.Empty(f.Broker.GetSnapshot().Subscriptions);
        await c.SubscribeAsync(2, 1, "cars", 100, filters: Headers.Of(("fb-priority", "1")));
        Assert.Equal(FrameType.Ok, (await c.ReadAsync()).Type);
    }

    /// <summary>
    /// A filter takes one value per header name: a SUBSCRIBE that lists a name twice with different values is refused
    /// with InvalidArgument in the embedded broker's words after "SUBSCRIBE: " (the client tests check those words
    /// agree; the .NET client refuses such a filter before sending); the connection stays open, and the same value twice
    /// is one filter.
    /// </summary>
    [Fact]
    public async Task Two_values_for_one_filter_name_are_refused_in_the_embedded_brokers_words()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var c = await f.ConnectAsync();
        await c.SubscribeAsync(1, 1, "cars", 100, filters: Headers.Of(("color", "red"), ("size", "l"), ("color", "blue")));
        var error = await c.ReadAsync();
        Assert.Equal((FrameType.Error, ErrorCode.InvalidArgument, false), (error.Type, error.ErrorCode, error.CloseConnection));
        Assert.Equal("SUBSCRIBE: header filter 'color' is given two values, 'red' and 'blue': a subscription filters each header name on one value", error.ErrorReason);

        Assert.Empty(f.Broker.GetSnapshot().Subscriptions);
        await c.SubscribeAsync(2, 1, "cars", 100, filters: Headers.Of(("color", "red"), ("color", "red")));
        Assert.Equal(FrameType.Ok, (await c.ReadAsync()).Type);
    }

    /// <summary>
    /// A refusal quotes a long filter name or value by its first 64 characters and its length (the rules the embedded
    /// broker and the .NET client share): before, two 10,000-byte values for one name gave a 20 KB ERROR frame.
    /// </summary>
    [Fact]
    public async Task A_refusal_quotes_a_long_filter_name_or_value_by_its_first_64_characters_and_its_length()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var c = await f.ConnectAsync();
        var name = new string('n', 200);
        await c.SubscribeAsync(1, 1, "cars", 100, filters: Headers.Of((name, new string('r', 10_000)), (name, new string('b', 10_000))));
        var error = await c.ReadAsync();
        Assert.Equal((FrameType.Error, ErrorCode.InvalidArgument, false), (error.Type, error.ErrorCode, error.CloseConnection));
        Assert.Equal($"SUBSCRIBE: header filter '{name[..64]}… (200 characters)' is given two values, '{new string('r', 64)}… (10000 characters)' and '{new string('b', 64)}… (10000 characters)': a subscription filters each header name on one value", error.ErrorReason);

        Assert.Empty(f.Broker.GetSnapshot().Subscriptions);
    }

    /// <summary>
    /// A filter value that is not UTF-8 was refused as "header filter values must be UTF-8 text", naming no filter; the
    /// reason names it as every other refusal does, a long name quoted by its first 64 characters and its length.
    /// </summary>
    [Fact]
    public async Task A_filter_value_that_is_not_UTF8_is_refused_naming_the_filter()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var c = await f.ConnectAsync();
        var name = "währung-" + new string('n', 192);
        await c.SubscribeAsync(1, 1, "cars", 100, filters: Headers.Of(("color", "red"u8.ToArray()), (name, [0xC3, 0x28])));
        var error = await c.ReadAsync();
        Assert.Equal((FrameType.Error, ErrorCode.InvalidArgument, false, 1UL), (error.Type, error.ErrorCode, error.CloseConnection, error.RequestId));
        Assert.Equal($"SUBSCRIBE: header filter '{name[..64]}… (200 characters)': a value must be UTF-8 text (the broker compares values as text), and this one is not", error.ErrorReason);

        await c.SubscribeAsync(2, 2, "cars", 100, filters: Headers.Of(("größe", new byte[] { 0xFF })));
        Assert.Equal("SUBSCRIBE: header filter 'größe': a value must be UTF-8 text (the broker compares values as text), and this one is not", (await c.ReadAsync()).ErrorReason);
        Assert.Empty(f.Broker.GetSnapshot().Subscriptions);
    }

    [Fact]
    public async Task Unsubscribe_ends_deliveries_and_bad_ids_get_their_errors()
    {
        await using var f = await ServerFixture.StartAsync(o => o with { MaxSubscriptionsPerConnection = 2 });
        await using var c = await f.ConnectAsync();
        await c.SubscribeAsync(1, 5, "u", 100, Protocol.StartKind.Latest);
        Assert.Equal(FrameType.Ok, (await c.ReadAsync()).Type);

        await c.SubscribeAsync(2, 5, "u", 100);
        var inUse = await c.ReadAsync();
        Assert.Equal((ErrorCode.SubscriptionIdInUse, 2UL, false), (inUse.ErrorCode, inUse.RequestId, inUse.CloseConnection));

        await c.SubscribeAsync(3, 6, "u2", 100);
        Assert.Equal(FrameType.Ok, (await c.ReadAsync()).Type);
        await c.SubscribeAsync(4, 7, "u3", 100);
        Assert.Equal(ErrorCode.TooManySubscriptions, (await c.ReadAsync()).ErrorCode);

        await c.SendAsync(w => FrameWriter.WriteCredit(w, 5, 99, 1));
        var unknown = await c.ReadAsync();
        Assert.Equal((ErrorCode.UnknownSubscription, 5UL), (unknown.ErrorCode, unknown.RequestId));

        await f.Broker.PublishAsync("u", "before"u8.ToArray());
        Assert.Equal("before", (await c.ReadDeliveriesAsync(1))[0].Text);
        await c.SendAsync(w => FrameWriter.WriteUnsubscribe(w, 6, 5));
        var frames = await c.ReadUntilAsync(x => x.Type == FrameType.Ok && x.RequestId == 6);
        Assert.Single(frames);
        await f.Broker.PublishAsync("u", "after"u8.ToArray());
        Eventually.True(() => f.Broker.GetSnapshot().Topics.Single(t => t.Name == "u").Head == 2, "published");
        Assert.Single(await c.RoundTripAsync());

        await c.SendAsync(w => FrameWriter.WriteUnsubscribe(w, 7, 5));
        Assert.Equal(ErrorCode.UnknownSubscription, (await c.ReadAsync()).ErrorCode);
    }

    [Fact]
    public async Task Subscribing_outside_the_tokens_patterns_is_Forbidden_and_the_connection_stays()
    {
        await using var f = await ServerFixture.StartAsync(o => o with { Tokens = [new AccessToken("t", SubscribePatterns: ["public.>", "status"])] });
        await using var c = await f.ConnectAsync(token: "t");
        await c.SubscribeAsync(1, 1, "private.x", 1);
        var forbidden = await c.ReadAsync();
        Assert.Equal((ErrorCode.Forbidden, false), (forbidden.ErrorCode, forbidden.CloseConnection));
        await c.SubscribeAsync(2, 2, ">", 1);
        Assert.Equal(ErrorCode.Forbidden, (await c.ReadAsync()).ErrorCode);
        await c.SubscribeAsync(3, 3, "public.*.x", 1);
        Assert.Equal(FrameType.Ok, (await c.ReadAsync()).Type);
        await c.SubscribeAsync(4, 4, "status", 1);
        Assert.Equal(FrameType.Ok, (await c.ReadAsync()).Type);
        await c.SubscribeAsync(5, 5, "bad..pattern", 1);
        Assert.Equal(ErrorCode.InvalidName, (await c.ReadAsync()).ErrorCode);
    }

    [Fact]
    public async Task A_transient_subscriber_that_falls_a_ring_behind_gets_DROPPED_then_the_rest()
    {
        await using var f = await ServerFixture.StartAsync();
        f.Broker.CreateTopic("quotes", TopicOptions.Default with { Persistent = false, TransientCapacity = 16 });
        await using var sub = await f.ConnectAsync();
        await sub.SubscribeAsync(1, 4, "quotes", 0, Protocol.StartKind.Earliest);
        Assert.Equal(FrameType.Ok, (await sub.ReadAsync()).Type);
        for (var i = 0; i < 100; i++)
        {
            await f.Broker.PublishAsync("quotes", Encoding.UTF8.GetBytes($"q{i}"));
        }

        await sub.SendAsync(w => FrameWriter.WriteCredit(w, 0, 4, 1000));
        var dropped = await sub.ReadAsync();
        Assert.Equal(FrameType.Dropped, dropped.Type);
        Assert.Equal((4u, 84UL, 84UL), (dropped.DroppedSubscriptionId, dropped.DroppedCount, dropped.ResumeOffset));
        var d = await sub.ReadDeliveriesAsync(16);
        Assert.Equal(Enumerable.Range(84, 16).Select(i => $"q{i}"), d.Select(x => x.Text));
    }

    /// <summary>
    /// A persistent topic's subscriber without credit does not hold retention back (the flusher's own pass deletes
    /// under it); given credit, it gets DROPPED with what retention took, then the rest from the first retained offset.
    /// Its reader is parked, so the pass lets go of the deleted segment it was in; only if the credit came while that
    /// pass ran (the topic's tail moves before the pass releases) does it first get part of that segment, read from the
    /// mapping it then still held.
    /// </summary>
    [Fact]
    public async Task A_paused_subscriber_of_a_persistent_topic_loses_deleted_messages_to_retention_and_gets_DROPPED()
    {
        await using var f = await ServerFixture.StartAsync();
        f.Broker.CreateTopic("history", TopicOptions.Default with { SegmentBytes = 64 << 10, MaxMessageBytes = 16 << 10, RetentionBytes = 128 << 10 });
        await using var sub = await f.ConnectAsync();
        await sub.SubscribeAsync(1, 7, "history", 0, Protocol.StartKind.Earliest);
        Assert.Equal(FrameType.Ok, (await sub.ReadAsync()).Type);
        const int N = 2000; // ~140 B records: about 5 segments of 64 KiB against a 128 KiB limit
        var publishes = Enumerable.Range(0, N).Select(i => f.Broker.PublishAsync("history", Payloads.Padded($"h{i}|", 104)).AsTask());
        Assert.Equal(Enumerable.Range(0, N).Select(i => (long)i), await Task.WhenAll(publishes));

        // The journal's flusher applies retention every 5 s, although the subscriber's reader sits in segment 0.
        await Eventually.TrueAsync(() => f.Broker.GetSnapshot().Topics.Single(t => t.Name == "history").Tail > 0, "retention deletes under the paused subscriber");
        var first = (ulong)f.Broker.GetSnapshot().Topics.Single(t => t.Name == "history").Tail;

        await sub.SendAsync(w => FrameWriter.WriteCredit(w, 0, 7, N));
        var frames = await sub.ReadUntilAsync(x => x.Deliveries.Count > 0 && x.Deliveries[^1].Offset == N - 1);
        var held = frames.TakeWhile(x => x.Type != FrameType.Dropped).SelectMany(x => x.Deliveries).ToList();
        var dropped = Assert.Single(frames, x => x.Type == FrameType.Dropped);
        var after = frames.SkipWhile(x => x.Type != FrameType.Dropped).SelectMany(x => x.Deliveries).ToList();
        Assert.Equal(Enumerable.Range(0, held.Count).Select(i => (ulong)i), held.Select(d => d.Offset));
        Assert.Equal((7u, first - (ulong)held.Count, first), (dropped.DroppedSubscriptionId, dropped.DroppedCount, dropped.ResumeOffset));
        Assert.Equal(Enumerable.Range((int)first, N - (int)first).Select(i => (ulong)i), after.Select(d => d.Offset));
        Assert.All(held.Concat(after), d => Assert.StartsWith($"h{d.Offset}|", d.Text, StringComparison.Ordinal));
        Assert.Equal((long)dropped.DroppedCount, f.Broker.GetSnapshot().Subscriptions.Single().Missed);
    }

    [Fact]
    public async Task A_message_larger_than_the_clients_limit_ends_the_subscription()
    {
        await using var f = await ServerFixture.StartAsync();
        await f.Broker.PublishAsync("big", new byte[4000]);
        await using var c = await f.ConnectAsync(maxInboundFrameSize: 2048);
        await c.SubscribeAsync(1, 8, "big", 10, Protocol.StartKind.Earliest);
        Assert.Equal(FrameType.Ok, (await c.ReadAsync()).Type);
        var error = await c.ReadAsync();
        Assert.Equal((ErrorCode.MessageTooLarge, 8u, true, false), (error.ErrorCode, error.ErrorSubscriptionId, error.SubscriptionEnded, error.CloseConnection));
        await c.SendAsync(w => FrameWriter.WriteCredit(w, 3, 8, 1));
        Assert.Equal(ErrorCode.UnknownSubscription, (await c.ReadAsync()).ErrorCode);
    }
}
