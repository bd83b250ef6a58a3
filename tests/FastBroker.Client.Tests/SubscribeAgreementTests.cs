using FastBroker.Client;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

/// <summary>
/// A SUBSCRIBE's filters and time start mean the same to the embedded broker and through a client and a real server:
/// each case is tried on both, side by side (the server's own answer to a raw SUBSCRIBE is pinned in
/// FastBroker.Server.Tests, SubscribeTests).
/// </summary>
public class SubscribeAgreementTests
{
    [Fact]
    public async Task A_filter_on_a_header_the_broker_writes_is_refused_alike_by_the_embedded_broker_and_the_client()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();

        // fb-producer and fb-expires carry binary values the broker writes per message (docs/protocol.md, section 9),
        // which an exact text filter cannot select messages by. Before, the embedded broker took such a filter (and
        // passed nearly nothing) while the client threw ArgumentException ("Header 'fb-producer' is reserved").
        var cases = new (string Name, string Reason)[]
        {
            ("fb-producer", "header filter 'fb-producer': the broker writes this header itself (a binary producer id and sequence, one per message), so a filter cannot select messages by it"),
            ("fb-expires", "header filter 'fb-expires': the broker writes this header itself (a binary expiry time in Unix milliseconds, for a TTL), so a filter cannot select messages by it"),
        };
        foreach (var (name, reason) in cases)
        {
            await FilterAgreement.AssertRefusedAlikeAsync(f, client, new Dictionary<string, string> { ["ccy"] = "USD", [name] = "1" }, reason);
        }

        Assert.Empty(f.Broker.GetSnapshot().Subscriptions);

        // The other fb- names are the publisher's and filter like any header.
        var priority = new Dictionary<string, string> { ["fb-priority"] = "7" };
        using var local = f.Broker.Subscribe("fx", new SubscriptionOptions { Start = StartPosition.Earliest, HeaderFilters = priority });
        await using var sub = await client.CreateSubscriptionAsync("fx", SubscribeOptions.Default with { Start = SubscribeStart.Earliest, Filters = priority });
        await client.PublishAsync("fx", Bytes("low"), PublishOptions.Default with { Headers = new PublishHeaders().Add("fb-priority", "1") });
        await client.PublishAsync("fx", Bytes("high"), PublishOptions.Default with { Headers = new PublishHeaders().Add("fb-priority", "7") });
        await FilterAgreement.AssertFirstAlikeAsync(local, sub, "high", 1);
    }

    [Fact]
    public async Task A_filter_with_a_lone_surrogate_is_refused_by_the_client_in_the_embedded_brokers_words()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();

        // UTF-8 cannot carry a lone surrogate. Before, the client sent it as U+FFFD (a filter on other text than the
        // caller's, and two names could become one) while the embedded broker refused it.
        var cases = new (Dictionary<string, string> Filters, string Reason)[]
        {
            (new() { ["ccy\uD800"] = "USD" }, "header filter 'ccy\uD800': names and values must be valid UTF-16 text (a lone surrogate cannot be encoded as UTF-8)"),
            (new() { ["ccy"] = "US\uDC00D" }, "header filter 'ccy': names and values must be valid UTF-16 text (a lone surrogate cannot be encoded as UTF-8)"),
        };
        foreach (var (filters, reason) in cases)
        {
            await FilterAgreement.AssertRefusedAlikeAsync(f, client, filters, reason);
        }

        // Nothing was sent: the server has no subscription, and the connection is the first one, still open.
        Assert.Empty(f.Broker.GetSnapshot().Subscriptions);
        Assert.Equal((true, 1), (client.IsConnected, client.ConnectCount));
    }

    [Fact]
    public async Task A_refusal_quotes_a_long_name_or_value_by_its_first_64_characters_and_its_length()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();

        // A reason quotes what the caller gave. Before, a 10,000-character name with a lone surrogate, or two
        // 10,000-character values for one name, gave a reason (an exception message, an ERROR frame) that long; a name
        // too long to carry was shown by its first 32 characters without its length.
        var name = new string('n', 10_000);
        var cases = new (IReadOnlyDictionary<string, string> Filters, string Reason)[]
        {
            (new Dictionary<string, string> { [name + "\uD800"] = "x" }, $"header filter '{name[..64]}… (10001 characters)': names and values must be valid UTF-16 text (a lone surrogate cannot be encoded as UTF-8)"),
            (new ListedFilters(("ccy", new string('u', 10_000)), ("ccy", new string('e', 10_000))), $"header filter 'ccy' is given two values, '{new string('u', 64)}… (10000 characters)' and '{new string('e', 64)}… (10000 characters)': a subscription filters each header name on one value"),
            (new Dictionary<string, string> { [name] = "x" }, $"header filter '{name[..64]}… (10000 characters)': a header name is 1 to 255 bytes of UTF-8 (this one is 10000), so no message can carry it"),

            // The cut does not split a surrogate pair: U+1F600 at characters 64 and 65 is left out whole.
            (new Dictionary<string, string> { [name[..63] + string.Concat(Enumerable.Repeat("\U0001F600", 100))] = "x" }, $"header filter '{name[..63]}… (263 characters)': a header name is 1 to 255 bytes of UTF-8 (this one is 463), so no message can carry it"),
        };
        foreach (var (filters, reason) in cases)
        {
            var embedded = Assert.Throws<BrokerException>(() => f.Broker.Subscribe("fx", new SubscriptionOptions { HeaderFilters = filters }));
            Assert.True(embedded.Message.Length < 300, $"a reason of {embedded.Message.Length} characters");
            await FilterAgreement.AssertRefusedAlikeAsync(f, client, filters, reason);
        }

        Assert.Empty(f.Broker.GetSnapshot().Subscriptions);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_time_between_two_milliseconds_starts_at_the_same_message_embedded_and_through_the_server(bool persistent)
    {
        await using var f = await ServerFixture.StartAsync();
        f.Broker.CreateTopic("ticks", TopicOptions.Default with { Persistent = persistent });
        var client = await f.ConnectAsync();
        await using var all = await client.CreateSubscriptionAsync("ticks", SubscribeOptions.Default with { Start = SubscribeStart.Earliest });
        await client.PublishAsync("ticks", Bytes("at"));
        var at = (await TakeAsync(all, 1))[0].Timestamp;

        // Stamps are whole milliseconds from the wall clock: the next message is stamped later once it has moved on.
        await EventuallyAsync(() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() > at.ToUnixTimeMilliseconds(), "the wall clock passed the first stamp");
        await client.PublishAsync("ticks", Bytes("after"));
        var after = (await TakeAsync(all, 1))[0].Timestamp;
        Assert.True(after > at, $"the wall clock stepped back: 'after' stamped {after:O}, 'at' {at:O}");

        // At the stamp itself both start at that message; half a millisecond later both start at the next one (the
        // message stamped at is before that time). Before, the embedded broker rounded the time down and started at 0,
        // while the server rounded the SUBSCRIBE's nanoseconds up and started at 1.
        foreach (var (time, expected) in new[] { (at, 0L), (at.AddTicks(TimeSpan.TicksPerMillisecond / 2), 1L), (at.AddTicks(1), 1L) })
        {
            using var local = f.Broker.Subscribe("ticks", new SubscriptionOptions { Start = StartPosition.AtTime(time) });
            await using var remote = await client.CreateSubscriptionAsync("ticks", SubscribeOptions.Default with { Start = SubscribeStart.AtTime(time) });
            Assert.Equal((expected, expected), (local.Positions["ticks"], remote.StartOffset));
            var first = (await TakeAsync(remote, 1))[0];
            Assert.Equal(expected, first.Offset);
        }
    }
}
