using FastBroker.Testing;
using static FastBroker.BrokerTests.Consume;

namespace FastBroker.BrokerTests;

public class RoutingTests
{
    [Fact]
    public async Task Wildcard_subscriptions_route_exactly_what_they_should_including_topics_created_later()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        b.CreateTopic("orders.eu");
        using var oneLevel = b.Subscribe("orders.*", new SubscriptionOptions { Start = StartPosition.Earliest });
        using var allLevels = b.Subscribe("orders.>", new SubscriptionOptions { Start = StartPosition.Earliest });
        using var exact = b.Subscribe("orders.eu.fr", new SubscriptionOptions { Start = StartPosition.Earliest });

        await b.PublishAsync("orders.eu", BrokerFixture.Utf8("a"));
        await b.PublishAsync("orders.us", BrokerFixture.Utf8("b")); // created now: both wildcards attach to it
        await b.PublishAsync("orders.eu.fr", BrokerFixture.Utf8("c"));
        await b.PublishAsync("trades.eu", BrokerFixture.Utf8("d"));

        Assert.Equal(["a", "b"], Drain(oneLevel, 2).Select(x => x.Payload).Order());
        Assert.Equal(["a", "b", "c"], Drain(allLevels, 3).Select(x => x.Payload).Order());
        Assert.Equal(["c"], Drain(exact, 1).Select(x => x.Payload));
    }

    [Fact]
    public async Task Header_filters_pass_only_matching_messages()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        using var eur = b.Subscribe("fx", new SubscriptionOptions
        {
            Start = StartPosition.Earliest,
            HeaderFilters = new Dictionary<string, string> { ["ccy"] = "EUR", ["side"] = "buy" },
        });
        var h = new MessageHeaders();
        await b.PublishAsync("fx", BrokerFixture.Utf8("1"), headers: h.Clear().Add("ccy", "EUR").Add("side", "buy"));
        await b.PublishAsync("fx", BrokerFixture.Utf8("2"), headers: h.Clear().Add("ccy", "USD").Add("side", "buy"));
        await b.PublishAsync("fx", BrokerFixture.Utf8("3"), headers: h.Clear().Add("ccy", "EUR"));
        await b.PublishAsync("fx", BrokerFixture.Utf8("4"));
        await b.PublishAsync("fx", BrokerFixture.Utf8("5"), headers: h.Clear().Add("side", "buy").Add("ccy", "EUR"));

        Assert.Equal(["1", "5"], Drain(eur, 2).Select(x => x.Payload));
        Assert.Equal(3, eur.Filtered);
    }

    [Fact]
    public async Task A_header_filter_passes_a_message_that_has_the_value_in_any_entry_of_a_repeated_header()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        using var eur = b.Subscribe("fx", new SubscriptionOptions
        {
            Start = StartPosition.Earliest,
            HeaderFilters = new Dictionary<string, string> { ["ccy"] = "EUR" },
        });
        var h = new MessageHeaders();
        await b.PublishAsync("fx", BrokerFixture.Utf8("usd-then-eur"), headers: h.Clear().Add("ccy", "USD").Add("ccy", "EUR"));
        await b.PublishAsync("fx", BrokerFixture.Utf8("eur-then-usd"), headers: h.Clear().Add("ccy", "EUR").Add("ccy", "USD"));
        await b.PublishAsync("fx", BrokerFixture.Utf8("usd-twice"), headers: h.Clear().Add("ccy", "USD").Add("ccy", "USD"));
        await b.PublishAsync("fx", BrokerFixture.Utf8("binary"), headers: h.Clear().Add("ccy", [0xFF, 0x00]).Add("ccy", "EUR"u8));
        await b.PublishAsync("fx", BrokerFixture.Utf8("none"));
        await b.PublishAsync("fx", BrokerFixture.Utf8("eur"), headers: h.Clear().Add("ccy", "EUR"));

        // docs/protocol.md, SUBSCRIBE: delivered if it has "a header with that name and exactly that value". Before,
        // only the first entry of the name was compared: usd-then-eur and binary were filtered out.
        Assert.Equal(["usd-then-eur", "eur-then-usd", "binary", "eur"], Consume.Drain(eur, 2).Select(x => x.Payload)); // all are readable: 2 fails fast before the fix
        Assert.Equal(2, eur.Filtered);
    }

    [Fact]
    public async Task Expired_messages_are_skipped_and_counted()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        using var sub = b.Subscribe("quotes", new SubscriptionOptions { Start = StartPosition.Earliest });
        await b.PublishAsync("quotes", BrokerFixture.Utf8("short-lived"), ttl: TimeSpan.FromMilliseconds(1));
        await b.PublishAsync("quotes", BrokerFixture.Utf8("long-lived"), ttl: TimeSpan.FromHours(1));
        await b.PublishAsync("quotes", BrokerFixture.Utf8("forever"));

        // Wait until the first message's expiry has certainly passed (a condition on the clock, not a sleep).
        var start = DateTimeOffset.UtcNow;
        Eventually.True(() => DateTimeOffset.UtcNow - start > TimeSpan.FromMilliseconds(20), "clock moves on");
        Assert.Equal(["long-lived", "forever"], Drain(sub, 2).Select(x => x.Payload));
        Assert.Equal(1, sub.Expired);
    }

    [Fact]
    public async Task Replay_from_an_offset_and_from_a_timestamp_starts_at_the_right_message()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        for (var i = 0; i < 50; i++)
        {
            await b.PublishAsync("log", BrokerFixture.Utf8($"early{i}"));
        }

        // Timestamps are milliseconds: make sure the later batch is stamped strictly later.
        var boundary = DateTimeOffset.UtcNow.AddMilliseconds(2);
        Eventually.True(() => DateTimeOffset.UtcNow > boundary.AddMilliseconds(1), "clock passes the boundary");
        for (var i = 0; i < 50; i++)
        {
            await b.PublishAsync("log", BrokerFixture.Utf8($"late{i}"));
        }

        using var fromOffset = b.Subscribe("log", new SubscriptionOptions { Start = StartPosition.AtOffset(42) });
        var got = Drain(fromOffset, 58);
        Assert.Equal(42, got[0].Offset);
        Assert.Equal("early42", got[0].Payload);
        Assert.Equal(58, got.Count);

        using var fromTime = b.Subscribe("log", new SubscriptionOptions { Start = StartPosition.AtTime(boundary) });
        var late = Drain(fromTime, 50);
        Assert.Equal("late0", late[0].Payload);
        Assert.Equal(50, late.Count);

        using var fromLatest = b.Subscribe("log", new SubscriptionOptions { Start = StartPosition.Latest });
        await b.PublishAsync("log", BrokerFixture.Utf8("newest"));
        Assert.Equal(["newest"], Drain(fromLatest, 1).Select(x => x.Payload));
    }

    [Fact]
    public async Task A_time_start_on_a_transient_topic_resolves_once_and_then_delivers_messages_stamped_earlier()
    {
        var t0 = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var clock = new SteppedClock(t0);
        await using var f = await BrokerFixture.StartAsync(o => o with { StampClock = clock });
        var b = f.Broker;
        b.CreateTopic("ticks", TopicOptions.Default with { Persistent = false });
        await b.PublishAsync("ticks", BrokerFixture.Utf8("before"));
        clock.Set(t0 + 1_000);
        await b.PublishAsync("ticks", BrokerFixture.Utf8("at"));
        clock.Set(t0 + 500); // the wall clock steps back (NTP, a VM restored)
        await b.PublishAsync("ticks", BrokerFixture.Utf8("stepped-back"));

        // The first message at or after t0 + 1 s is "at": from there on everything is delivered, as from the offset a
        // persistent topic's time index resolves the start to. One starting after every stored message starts at the
        // live end, and delivers what comes next.
        using var fromAt = b.Subscribe("ticks", new SubscriptionOptions { Start = StartPosition.AtTime(DateTimeOffset.FromUnixTimeMilliseconds(t0 + 1_000)) });
        using var fromLater = b.Subscribe("ticks", new SubscriptionOptions { Start = StartPosition.AtTime(DateTimeOffset.FromUnixTimeMilliseconds(t0 + 5_000)) });
        clock.Set(t0 + 200);
        await b.PublishAsync("ticks", BrokerFixture.Utf8("live"));

        // All are readable once confirmed (a transient topic's ring is written before the confirmation): one fetch
        // each. Before, the cutoff was compared with every message for ever: "stepped-back" and "live" were skipped.
        Assert.Equal(["at", "stepped-back", "live"], FetchOnce(fromAt));
        Assert.Equal(["live"], FetchOnce(fromLater));

        static List<string> FetchOnce(Subscription s)
        {
            var c = new Collected();
            var r = new Recorder(c);
            s.Fetch(1000, ref r);
            return [.. c.Items.Select(x => x.Payload)];
        }
    }

    /// <summary>A wall clock a test sets: the journaler stamps each batch with it.</summary>
    private sealed class SteppedClock(long unixMs) : TimeProvider
    {
        private long _unixMs = unixMs;

        public void Set(long unixMs) => Volatile.Write(ref _unixMs, unixMs);

        public override DateTimeOffset GetUtcNow() => DateTimeOffset.FromUnixTimeMilliseconds(Volatile.Read(ref _unixMs));
    }

    [Fact]
    public async Task A_transient_subscriber_a_whole_ring_behind_is_told_how_many_it_missed()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        b.CreateTopic("ticks", TopicOptions.Default with { Persistent = false, TransientCapacity = 16 });
        using var slow = b.Subscribe("ticks", new SubscriptionOptions { Start = StartPosition.Earliest });
        for (var i = 0; i < 100; i++)
        {
            await b.PublishAsync("ticks", BrokerFixture.Utf8($"t{i}"));
        }

        var got = Drain(slow, 16);
        Assert.Equal(84, slow.Missed);
        Assert.Equal(Enumerable.Range(84, 16).Select(i => $"t{i}"), got.Select(x => x.Payload));
    }

    /// <summary>A start at an offset the ring has overwritten: from the oldest kept, the gap counted as for a committed position (it was not counted).</summary>
    [Fact]
    public async Task A_transient_start_at_an_offset_the_ring_overwrote_counts_the_gap_as_missed()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        b.CreateTopic("ticks", TopicOptions.Default with { Persistent = false, TransientCapacity = 16 });
        for (var i = 0; i < 100; i++)
        {
            await b.PublishAsync("ticks", BrokerFixture.Utf8($"t{i}"));
        }

        using var fromOffset = b.Subscribe("ticks", new SubscriptionOptions { Start = StartPosition.AtOffset(80) });
        Assert.Equal(84, fromOffset.Positions["ticks"]); // the first offset it delivers (a server's OK)
        Assert.Equal(Enumerable.Range(84, 16).Select(i => $"t{i}"), Drain(fromOffset, 16).Select(x => x.Payload));
        Assert.Equal(4, fromOffset.Missed);
    }
}
