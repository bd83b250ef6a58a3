using FastBroker.Client;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

public class PublishSubscribeTests
{
    [Fact]
    public async Task Publish_returns_dense_offsets_and_a_subscriber_from_earliest_gets_every_field_back()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();
        var headers = new PublishHeaders().Add("trace", "ab").Add("bin", [1, 2, 3]);
        var options = PublishOptions.Default with { Key = Bytes("k1"), Headers = headers };
        var before = DateTimeOffset.UtcNow.AddMinutes(-1);

        Assert.Equal(0, await client.PublishAsync("orders.eu", Bytes("m0"), options));
        Assert.Equal(1, await client.PublishAsync("orders.eu", Bytes("m1")));
        Assert.Equal(0, await client.PublishAsync("orders.us", Bytes("other topic")));

        await using var sub = await client.CreateSubscriptionAsync("orders.eu", SubscribeOptions.Default with { Start = SubscribeStart.Earliest });
        Assert.Equal(0, sub.StartOffset);
        var got = await TakeAsync(sub, 2);

        Assert.Equal("orders.eu", got[0].Topic);
        Assert.Equal(0, got[0].Offset);
        Assert.Equal("m0", got[0].GetPayloadString());
        Assert.Equal("k1", Text(got[0].Key));
        Assert.Equal("ab", got[0].Headers.GetString("trace"));
        Assert.True(got[0].TryGetHeader("bin", out var bin));
        Assert.Equal(new byte[] { 1, 2, 3 }, bin.ToArray());

        // The broker may add reserved fb- headers (it keeps the idempotent producer's id in fb-producer).
        Assert.Equal(["trace", "bin"], got[0].Headers.Select(h => h.Key).Where(k => !k.StartsWith("fb-", StringComparison.Ordinal)));
        Assert.Equal(1, got[0].DeliveryCount);
        Assert.InRange(got[0].Timestamp, before, DateTimeOffset.UtcNow.AddMinutes(1));
        Assert.Equal(1, got[1].Offset);
        Assert.True(got[1].Key.IsEmpty);
        Assert.DoesNotContain(got[1].Headers, h => !h.Key.StartsWith("fb-", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Fan_out_three_subscribers_each_see_every_message_in_order()
    {
        await using var f = await ServerFixture.StartAsync();
        var publisher = await f.ConnectAsync();
        var subscribers = new List<ClientSubscription>();
        for (var i = 0; i < 3; i++)
        {
            var c = await f.ConnectAsync();
            subscribers.Add(await c.CreateSubscriptionAsync("fan.out", SubscribeOptions.Default with { Credit = 64 }));
        }

        const int N = 500;
        var publishes = new List<Task<long>>();
        for (var i = 0; i < N; i++)
        {
            publishes.Add(publisher.PublishAsync("fan.out", Bytes($"m{i}")).AsTask());
        }

        var offsets = await Task.WhenAll(publishes).WaitAsync(Deadline);
        Assert.Equal(Enumerable.Range(0, N).Select(i => (long)i), offsets);
        foreach (var s in subscribers)
        {
            var got = await TakeAsync(s, N);
            Assert.Equal(Enumerable.Range(0, N).Select(i => $"m{i}"), got.Select(m => m.GetPayloadString()));
            Assert.Equal(Enumerable.Range(0, N).Select(i => (long)i), got.Select(m => m.Offset));
            await s.DisposeAsync();
        }
    }

    [Fact]
    public async Task SubscribeAsync_enumerates_a_wildcard_pattern_and_unsubscribes_when_the_loop_ends()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();
        await client.PublishAsync("shop.eu.orders", Bytes("a"));
        await client.PublishAsync("shop.us.orders", Bytes("b"));
        await client.PublishAsync("shop.eu.refunds", Bytes("not matched"));

        var seen = new List<string>();
        using var cts = new CancellationTokenSource(Deadline);
        await foreach (var m in client.SubscribeAsync("shop.*.orders", SubscribeOptions.Default with { Start = SubscribeStart.Earliest }, cts.Token))
        {
            seen.Add($"{m.Topic}:{m.GetPayloadString()}");
            if (seen.Count == 2)
            {
                break;
            }
        }

        Assert.Equal(["shop.eu.orders:a", "shop.us.orders:b"], seen.Order());
        await EventuallyAsync(() => f.Broker.GetSnapshot().Subscriptions.Count == 0, "the enumeration's end unsubscribed");
    }

    [Fact]
    public async Task Header_filters_deliver_only_matching_messages()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();
        await using var sub = await client.CreateSubscriptionAsync("filtered", SubscribeOptions.Default with
        {
            Start = SubscribeStart.Earliest,
            Filters = new Dictionary<string, string> { ["region"] = "eu" },
        });
        await client.PublishAsync("filtered", Bytes("us"), PublishOptions.Default with { Headers = new PublishHeaders().Add("region", "us") });
        await client.PublishAsync("filtered", Bytes("none"));
        await client.PublishAsync("filtered", Bytes("eu"), PublishOptions.Default with { Headers = new PublishHeaders().Add("region", "eu") });

        var got = await TakeAsync(sub, 1);
        Assert.Equal("eu", got[0].GetPayloadString());
        Assert.Equal(2, got[0].Offset);
    }

    [Fact]
    public async Task Two_values_for_one_header_filter_are_refused_alike_by_the_embedded_broker_and_the_client()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();

        // A filter takes one value per header name: SubscriptionOptions.HeaderFilters and the client's Filters are
        // dictionaries, which may list a key twice (a raw SUBSCRIBE may list a name twice: docs/protocol.md). The client
        // refuses them at the call, as it does the other filters the broker refuses, in the broker's words (the server's
        // answer to such a SUBSCRIBE is pinned in FastBroker.Server.Tests, SubscribeTests).
        var twoValues = new ListedFilters(("ccy", "USD"), ("side", "buy"), ("ccy", "EUR"));
        await FilterAgreement.AssertRefusedAlikeAsync(f, client, twoValues, "header filter 'ccy' is given two values, 'USD' and 'EUR': a subscription filters each header name on one value");
        Assert.Empty(f.Broker.GetSnapshot().Subscriptions);

        // Two keys that UTF-8 makes one name (lone surrogates both become U+FFFD) are refused as text that is not valid.
        var surrogates = Assert.Throws<BrokerException>(() => f.Broker.Subscribe("fx", new SubscriptionOptions
        {
            HeaderFilters = new Dictionary<string, string> { ["ccy\uD800"] = "USD", ["ccy\uDC00"] = "EUR" },
        }));
        Assert.Equal(BrokerErrorCode.InvalidArgument, surrogates.Code);

        // The same value twice is one filter, for both.
        var sameTwice = new ListedFilters(("ccy", "EUR"), ("ccy", "EUR"));
        using var local = f.Broker.Subscribe("fx", new SubscriptionOptions { Start = StartPosition.Earliest, HeaderFilters = sameTwice });
        await using var sub = await client.CreateSubscriptionAsync("fx", SubscribeOptions.Default with { Start = SubscribeStart.Earliest, Filters = sameTwice });
        await client.PublishAsync("fx", Bytes("usd"), PublishOptions.Default with { Headers = new PublishHeaders().Add("ccy", "USD") });
        await client.PublishAsync("fx", Bytes("eur"), PublishOptions.Default with { Headers = new PublishHeaders().Add("ccy", "EUR") });
        Assert.Equal("eur", (await TakeAsync(sub, 1))[0].GetPayloadString());
        using var deadline = new CancellationTokenSource(Deadline);
        await foreach (var m in local.ReadAllAsync(deadline.Token))
        {
            Assert.Equal("eur", m.PayloadText); // usd, offset 0, was filtered out
            break;
        }
    }

    [Fact]
    public async Task A_header_filter_no_message_can_carry_is_refused_alike_by_the_embedded_broker_and_the_client()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();

        // A header name is 1 to 255 bytes of UTF-8 and a value at most 65535 (docs/protocol.md, header entry): a filter
        // outside them passes no message. Before, the embedded broker took it and filtered out everything, silently; the
        // client threw ArgumentOutOfRangeException ("Must be 1 to 255 UTF-8 bytes", parameter "name").
        var cases = new (Dictionary<string, string> Filters, string Reason)[]
        {
            (new() { [""] = "USD" }, "header filter '': a header name is 1 to 255 bytes of UTF-8 (this one is 0), so no message can carry it"),
            (new() { ["ccy"] = "USD", [new string('é', 128)] = "x" }, $"header filter '{new string('é', 64)}… (128 characters)': a header name is 1 to 255 bytes of UTF-8 (this one is 256), so no message can carry it"),
            (new() { ["ccy"] = new string('v', 65536) }, "header filter 'ccy': a header value is at most 65535 bytes (this one is 65536), so no message can carry it"),
        };
        foreach (var (filters, reason) in cases)
        {
            await FilterAgreement.AssertRefusedAlikeAsync(f, client, filters, reason);
        }

        Assert.Empty(f.Broker.GetSnapshot().Subscriptions);

        // The limits themselves are filters like any other (counted in UTF-8 bytes): both deliver the one message that
        // carries that header.
        var name = new string('é', 127) + "x";
        var value = new string('v', 65535);
        var atLimits = new Dictionary<string, string> { [name] = value };
        using var local = f.Broker.Subscribe("fx", new SubscriptionOptions { Start = StartPosition.Earliest, HeaderFilters = atLimits });
        await using var sub = await client.CreateSubscriptionAsync("fx", SubscribeOptions.Default with { Start = SubscribeStart.Earliest, Filters = atLimits });
        await client.PublishAsync("fx", Bytes("other"), PublishOptions.Default with { Headers = new PublishHeaders().Add(name, "v") });
        await client.PublishAsync("fx", Bytes("match"), PublishOptions.Default with { Headers = new PublishHeaders().Add(name, value) });
        await FilterAgreement.AssertFirstAlikeAsync(local, sub, "match", 1);
    }

    [Fact]
    public async Task A_time_start_on_a_transient_topic_is_answered_with_the_offset_delivery_starts_at()
    {
        await using var f = await ServerFixture.StartAsync();
        f.Broker.CreateTopic("ticks", TopicOptions.Default with { Persistent = false });
        var client = await f.ConnectAsync();
        await using var all = await client.CreateSubscriptionAsync("ticks", SubscribeOptions.Default with { Start = SubscribeStart.Earliest });
        await client.PublishAsync("ticks", Bytes("before-0"));
        await client.PublishAsync("ticks", Bytes("before-1"));
        var before = (await TakeAsync(all, 2))[1].Timestamp;

        // The broker stamps in milliseconds from the wall clock: the next message is stamped later once it has moved on.
        await EventuallyAsync(() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() > before.ToUnixTimeMilliseconds(), "the wall clock passed the last stamp");
        await client.PublishAsync("ticks", Bytes("at"));
        await client.PublishAsync("ticks", Bytes("after"));
        var at = (await TakeAsync(all, 2))[0].Timestamp;
        Assert.True(at > before, $"the wall clock stepped back: 'at' stamped {at:O}, 'before-1' {before:O}");

        // The OK names the offset the time resolves to, the first message delivered, as for a persistent topic. Before,
        // a transient topic's OK named the ring's oldest message (0) while delivery began at 2, or at the head (4).
        await using var fromAt = await client.CreateSubscriptionAsync("ticks", SubscribeOptions.Default with { Start = SubscribeStart.AtTime(at) });
        await using var fromLater = await client.CreateSubscriptionAsync("ticks", SubscribeOptions.Default with { Start = SubscribeStart.AtTime(at.AddHours(1)) });
        Assert.Equal((2L, 4L), (fromAt.StartOffset, fromLater.StartOffset));
        Assert.Equal([("at", 2L), ("after", 3L)], (await TakeAsync(fromAt, 2)).Select(m => (m.GetPayloadString(), m.Offset)));

        // The client resumes a subscription that has received nothing at the offset its OK named: after a reconnect the
        // later one goes on from the head, not from the ring's oldest message ("before-0", stamped before its time).
        await f.RestartServerAsync();
        await EventuallyAsync(() => client.IsConnected && client.ConnectCount == 2, "the client reconnected");
        await client.PublishAsync("ticks", Bytes("live"));
        var next = (await TakeAsync(fromLater, 1))[0];
        Assert.Equal(("live", 4L), (next.GetPayloadString(), next.Offset));
    }

    [Fact]
    public async Task A_backlog_the_filters_skip_does_not_hold_back_the_matching_message_behind_it()
    {
        // No heartbeats on either side: nothing but the server's own loop may bring the matching message out.
        await using var f = await ServerFixture.StartAsync(server: o => o with { HeartbeatInterval = TimeSpan.FromMinutes(10) });
        var client = await f.ConnectAsync(o => o with { HeartbeatInterval = TimeSpan.FromMinutes(10) });
        var usd = new PublishHeaders().Add("ccy", "USD");
        var publishes = Enumerable.Range(0, 600).Select(i => client.PublishAsync("fx.backlog", Bytes($"usd{i}"), PublishOptions.Default with { Headers = usd }).AsTask()).ToList();
        await Task.WhenAll(publishes).WaitAsync(Deadline);
        await client.PublishAsync("fx.backlog", Bytes("eur"), PublishOptions.Default with { Headers = new PublishHeaders().Add("ccy", "EUR") });

        // More skipped messages than one fetch (256) and than the credit, then the matching one, then nothing more.
        await using var sub = await client.CreateSubscriptionAsync("fx.backlog", SubscribeOptions.Default with
        {
            Start = SubscribeStart.Earliest,
            Credit = 100,
            Filters = new Dictionary<string, string> { ["ccy"] = "EUR" },
        });
        var got = await TakeAsync(sub, 1);
        Assert.Equal(("eur", 600L), (got[0].GetPayloadString(), got[0].Offset));
    }

    [Fact]
    public async Task Pipelined_publishes_beyond_max_in_flight_complete_in_call_order()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync(o => o with { MaxInFlight = 64, MaxBatchMessages = 16 });
        const int N = 5000;
        var tasks = new ValueTask<long>[N];
        for (var i = 0; i < N; i++)
        {
            tasks[i] = client.PublishAsync(i % 2 == 0 ? "pipe.a" : "pipe.b", Bytes($"m{i}"));
        }

        for (var i = 0; i < N; i++)
        {
            Assert.Equal(i / 2, await Within(tasks[i]));
        }

        Assert.Equal(0, client.PendingPublishes);
    }

    [Fact]
    public async Task The_caller_may_reuse_its_buffer_as_soon_as_PublishAsync_returns()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();
        var buffer = new byte[4];
        var tasks = new List<Task<long>>();
        for (var i = 0; i < 100; i++)
        {
            BitConverter.TryWriteBytes(buffer, i);
            tasks.Add(client.PublishAsync("reuse", buffer).AsTask());
        }

        Array.Clear(buffer);
        await Task.WhenAll(tasks).WaitAsync(Deadline);
        await using var sub = await client.CreateSubscriptionAsync("reuse", SubscribeOptions.Default with { Start = SubscribeStart.Earliest });
        var got = await TakeAsync(sub, 100);
        Assert.Equal(Enumerable.Range(0, 100), got.Select(m => BitConverter.ToInt32(m.Payload.Span)));
    }

    [Fact]
    public async Task Fire_and_forget_messages_are_stored_in_order()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync(o => o with { MaxInFlight = 32 });
        await client.PublishAsync("ff", Bytes("first")); // creates the topic
        for (var i = 0; i < 300; i++)
        {
            client.Publish("ff", Bytes($"m{i}"));
        }

        await client.FlushAsync().WaitAsync(Deadline);
        await using var sub = await client.CreateSubscriptionAsync("ff", SubscribeOptions.Default with { Start = SubscribeStart.AtOffset(1) });
        var got = await TakeAsync(sub, 300);
        Assert.Equal(Enumerable.Range(0, 300).Select(i => $"m{i}"), got.Select(m => m.GetPayloadString()));
        Assert.DoesNotContain(f.Events, e => e.Kind == BrokerClientEventKind.PublishFailed);
    }

    [Fact]
    public async Task A_slow_consumer_never_has_more_than_its_credit_buffered_and_still_gets_everything()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();
        const int Credit = 10;
        const int N = 200;
        await using var sub = await client.CreateSubscriptionAsync("slow", SubscribeOptions.Default with { Credit = Credit });
        var publishes = Enumerable.Range(0, N).Select(i => client.PublishAsync("slow", Bytes($"m{i}")).AsTask()).ToList();
        await Task.WhenAll(publishes).WaitAsync(Deadline);

        var maxBuffered = 0;
        var got = new List<ClientMessage>();
        using var cts = new CancellationTokenSource(Deadline);
        while (got.Count < N)
        {
            maxBuffered = Math.Max(maxBuffered, sub.Buffered);
            got.Add(await sub.ReadAsync(cts.Token));
            maxBuffered = Math.Max(maxBuffered, sub.Buffered);
        }

        Assert.InRange(maxBuffered, 0, Credit);
        Assert.Equal(Enumerable.Range(0, N).Select(i => (long)i), got.Select(m => m.Offset));
    }

    [Fact]
    public async Task Ping_and_admin_queries_round_trip()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();
        await client.PublishAsync("admin.topic", Bytes("x"));

        Assert.True(await Within(client.PingAsync()) >= TimeSpan.Zero);
        var topics = await Within(client.AdminAsync(Protocol.AdminQuery.ListTopics, ""));
        Assert.Contains("admin.topic", topics, StringComparison.Ordinal);
        var stats = await Within(client.AdminAsync(Protocol.AdminQuery.ServerStats));
        Assert.StartsWith("{", stats.TrimStart(), StringComparison.Ordinal);
        Assert.NotEqual(0UL, client.ConnectionId);
        Assert.Equal(Protocol.ProtocolFeatures.IdempotentProducer, client.Features & Protocol.ProtocolFeatures.IdempotentProducer);
    }
}
