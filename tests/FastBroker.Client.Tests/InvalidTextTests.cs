using System.Text;
using FastBroker.Client;
using FastBroker.Protocol;
using FastBroker.Testing;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

/// <summary>
/// Text the client sends (topics, patterns, group and durable names, header names and values, a NACK's error, the
/// ADMIN argument, the HELLO's name, version and token) must be valid UTF-16: a lone surrogate has no UTF-8 encoding,
/// and <see cref="Encoding.UTF8"/> wrote it as U+FFFD, so a publish to "orders\uD800" went to "orders\uFFFD", another
/// topic than the caller named. The client refuses such text before sending, with an ArgumentException naming the
/// parameter (docs/client.md, "Names and text").
/// </summary>
public class InvalidTextTests
{
    private const string Lone = "orders\uD800";

    [Fact]
    public async Task A_publish_to_a_topic_with_a_lone_surrogate_is_refused_naming_topic_and_nothing_is_stored()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();

        var refused = Assert.IsType<ArgumentException>(Record.Exception(() => client.PublishAsync(Lone, Bytes("x"))));
        Assert.Equal("topic", refused.ParamName);
        Assert.Contains("lone surrogate at index 6", refused.Message, StringComparison.Ordinal);
        Assert.Equal("topic", Assert.IsType<ArgumentException>(Record.Exception(() => client.Publish("\uDC00orders", Bytes("x")))).ParamName);
        Assert.Equal("topic", Assert.IsType<ArgumentException>(Record.Exception(() => client.PublishAsync("ö" + Lone, Bytes("x"), PublishOptions.Default))).ParamName);

        Assert.Equal(0, await client.PublishAsync("orders", Bytes("after"))); // the connection is unharmed
        Assert.Equal(["orders"], f.Broker.GetSnapshot().Topics.Select(t => t.Name).Where(n => n.StartsWith("orders", StringComparison.Ordinal)));
    }

    /// <summary>The check is on the publish path: counting a valid non-ASCII topic name strictly allocates nothing.</summary>
    [Fact]
    public void Checking_a_non_ASCII_topic_name_allocates_nothing()
    {
        var total = 0;
        var bytes = AllocationMeter.MinBytesPerRound(() =>
        {
            for (var i = 0; i < 1000; i++)
            {
                total += FastBroker.Client.Internal.Utf8Names.CheckedByteCount("börse.\U0001F600", "topic");
            }
        });
        Assert.Equal(0, bytes);
        Assert.True(total > 0);
    }

    [Fact]
    public void A_header_name_or_text_value_with_a_lone_surrogate_is_refused_naming_it()
    {
        var headers = new PublishHeaders();
        Assert.Equal("name", Assert.Throws<ArgumentException>(() => headers.Add("trace\uDC00", "x")).ParamName);
        Assert.Equal("name", Assert.Throws<ArgumentException>(() => headers.Add("trace\uD800", "x"u8)).ParamName);
        Assert.Equal("value", Assert.Throws<ArgumentException>(() => headers.Add("trace", "a\uD800b")).ParamName);
        Assert.Equal(0, headers.Count);
        Assert.Equal(1, headers.Add("trace", "a\uD83D\uDE00b").Count); // a surrogate pair is text
    }

    [Fact]
    public async Task A_pattern_group_durable_name_or_admin_argument_with_a_lone_surrogate_is_refused_naming_it()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();

        Assert.Equal("pattern", (await Assert.ThrowsAsync<ArgumentException>(async () => await client.CreateSubscriptionAsync(Lone))).ParamName);
        Assert.Equal("DurableName", (await Assert.ThrowsAsync<ArgumentException>(async () => await client.CreateSubscriptionAsync("orders", new SubscribeOptions { DurableName = "d\uDC00" }))).ParamName);
        Assert.Equal("group", (await Assert.ThrowsAsync<ArgumentException>(async () => await client.JoinGroupAsync("orders", "g\uD800"))).ParamName);
        Assert.Equal("topic", (await Assert.ThrowsAsync<ArgumentException>(async () => await client.JoinGroupAsync(Lone, "workers"))).ParamName);
        Assert.Equal("argument", (await Assert.ThrowsAsync<ArgumentException>(async () => await client.AdminAsync(AdminQuery.TopicStats, Lone))).ParamName);

        Assert.Empty(f.Broker.GetSnapshot().Subscriptions);
        Assert.Empty(f.Broker.GetSnapshot().Groups);
    }

    [Fact]
    public async Task A_nack_error_with_a_lone_surrogate_is_refused_naming_error()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();
        await client.PublishAsync("jobs", Bytes("warm-up")); // the topic exists before the group
        await using var member = await client.JoinGroupAsync("jobs", "workers");
        await client.PublishAsync("jobs", Bytes("job"));
        using var deadline = new CancellationTokenSource(Deadline);
        var message = await member.ReadAsync(deadline.Token);

        Assert.Equal("error", Assert.Throws<ArgumentException>(() => member.NackAsync(message, requeue: false, error: "bad \uD800")).ParamName);
        await member.AckAsync(message);
    }

    [Theory]
    [InlineData("ClientName")]
    [InlineData("ClientVersion")]
    [InlineData("AuthToken")]
    public void A_client_name_version_or_token_with_a_lone_surrogate_is_refused_naming_it(string property)
    {
        var options = new BrokerClientOptions { Endpoints = ["127.0.0.1:1"] };
        options = property switch
        {
            "ClientName" => options with { ClientName = "app\uD800" },
            "ClientVersion" => options with { ClientVersion = "1.0\uDC00" },
            _ => options with { AuthToken = "s3cret\uD800" },
        };

        Assert.Equal(property, Assert.Throws<ArgumentException>(options.Validate).ParamName);
    }

    /// <summary>
    /// A client name or version over 255 UTF-8 bytes (a str8 in HELLO; 128 'é' are 256 bytes though 128 chars) or a
    /// token over 4 KiB is refused naming that property, by Validate and by ConnectAsync before it connects (nothing
    /// listens on port 1: a connect would fail with Closed, not an ArgumentException); so is a lone surrogate.
    /// </summary>
    [Theory]
    [InlineData("ClientName", false)]
    [InlineData("ClientVersion", false)]
    [InlineData("AuthToken", false)]
    [InlineData("ClientName", true)]
    [InlineData("ClientVersion", true)]
    [InlineData("AuthToken", true)]
    public async Task A_client_name_version_or_token_too_long_or_not_UTF16_is_refused_naming_it_before_connecting(string property, bool loneSurrogate)
    {
        var options = new BrokerClientOptions { Endpoints = ["127.0.0.1:1"], ConnectTimeout = TimeSpan.FromSeconds(5) };
        var tooLong = new string('\u00e9', 128);
        options = property switch
        {
            "ClientName" => options with { ClientName = loneSurrogate ? "app\uD800" : tooLong },
            "ClientVersion" => options with { ClientVersion = loneSurrogate ? "1.0\uDC00" : tooLong },
            _ => options with { AuthToken = loneSurrogate ? "s3cret\uD800" : new string('t', 4097) },
        };

        var validate = Assert.ThrowsAny<ArgumentException>(options.Validate);
        Assert.True(validate.ParamName == property, $"Validate named '{validate.ParamName}', not '{property}': {validate.Message}");
        var connect = await Assert.ThrowsAnyAsync<ArgumentException>(async () => await BrokerClient.ConnectAsync(options));
        Assert.Equal(property, connect.ParamName);
    }

    /// <summary>
    /// A request whose fb-reply-to is not valid UTF-8 (any publisher may set the header's bytes) or over 255 bytes names
    /// no topic: ReplyAsync refuses it naming 'request' before sending, rather than reply to the U+FFFD topic a lenient
    /// decoding makes of it (which the server refused after a round trip) or fail naming a 'topic' the caller never gave.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_reply_to_a_reply_to_that_is_not_a_topic_names_text_is_refused_naming_request(bool tooLong)
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();
        await using var requests = await client.CreateSubscriptionAsync("svc.odd", SubscribeOptions.Default with { Start = SubscribeStart.Earliest });
        byte[] replyTo = tooLong ? Encoding.ASCII.GetBytes("r." + new string('x', 300)) : [(byte)'r', (byte)'.', 0xFF];
        await f.Broker.PublishAsync("svc.odd", Bytes("q"), headers: new MessageHeaders().Add("fb-reply-to", replyTo).Add("fb-correlation-id", [1, 0, 0, 0, 0, 0, 0, 0]));
        var request = (await TakeAsync(requests, 1))[0];
        var error = await Assert.ThrowsAnyAsync<Exception>(async () => await client.ReplyAsync(request, Bytes("a")));
        Assert.True(error is ArgumentException { ParamName: "request" }, $"expected an ArgumentException naming 'request', got {error.GetType().Name}: {error.Message}");
    }

    /// <summary>
    /// Looking up a received message's header by a name with a lone surrogate encoded it with <see cref="Encoding.UTF8"/>,
    /// as U+FFFD, so "trace\uD800" found the header actually named "trace\uFFFD". Every string lookup (the view's on the
    /// reader loop, the owned message's, its headers') now refuses such a name naming 'name'.
    /// </summary>
    [Fact]
    public async Task A_header_lookup_by_a_name_with_a_lone_surrogate_is_refused_naming_name_and_finds_no_other_header()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();
        var probe = new LookupProbe();
        await using var consumer = await client.ConsumeAsync("lookup", probe, SubscribeOptions.Default with { Start = SubscribeStart.Earliest });
        await using var sub = await client.CreateSubscriptionAsync("lookup", SubscribeOptions.Default with { Start = SubscribeStart.Earliest });
        await client.PublishAsync("lookup", Bytes("m"), PublishOptions.Default with { Headers = new PublishHeaders().Add("trace\uFFFD", "replacement").Add("ok", "yes") });

        using var deadline = new CancellationTokenSource(Deadline);
        var message = await sub.ReadAsync(deadline.Token);
        foreach (var lookup in new Func<object?>[]
        {
            () => message.TryGetHeader("trace\uD800", out _),
            () => message.Headers.TryGetValue("trace\uDC00", out _),
            () => message.Headers.GetString("\uD800"),
        })
        {
            var refused = Assert.IsType<ArgumentException>(Record.Exception(lookup));
            Assert.Equal("name", refused.ParamName);
            Assert.Contains("lone surrogate at index", refused.Message, StringComparison.Ordinal);
            Assert.Contains("no header can have this name", refused.Message, StringComparison.Ordinal);
        }

        Assert.Equal("replacement", message.Headers.GetString("trace\uFFFD")); // the header as named is still found
        Assert.Equal("yes", message.Headers.GetString("ok"));

        await EventuallyAsync(() => probe.Done, "the handler looked its headers up");
        Assert.Equal(["name", "name", "found:replacement", "found:yes"], probe.Results);
    }

    /// <summary>The strict check is on the lookup path: a lookup by a valid (also non-ASCII) name allocates nothing.</summary>
    [Fact]
    public void Looking_a_header_up_by_name_allocates_nothing()
    {
        var block = new PublishHeaders().Add("börse.\U0001F600", "v").Add("trace", "t").Encoded.ToArray();
        var headers = new ClientHeaders(block, 2);
        var found = 0;
        var bytes = AllocationMeter.MinBytesPerRound(() =>
        {
            for (var i = 0; i < 1000; i++)
            {
                found += headers.TryGetValue("börse.\U0001F600", out _) ? 1 : 0;
                found += headers.TryGetValue("trace", out _) ? 1 : 0;
                found += headers.TryGetValue("missing", out _) ? 1 : 0;
            }
        });
        Assert.Equal(0, bytes);
        Assert.True(found > 0);
        Assert.False(headers.TryGetValue(new string('x', 300), out _)); // longer than any header name: not found
    }

    private sealed class LookupProbe : IClientMessageHandler
    {
        public List<string> Results { get; } = [];

        public volatile bool Done;

        public void OnMessage(scoped in ClientMessageView message)
        {
            foreach (var name in (string[])["trace\uD800", "\uDC00", "trace\uFFFD", "ok"])
            {
                try
                {
                    Results.Add(message.TryGetHeader(name, out var value) ? "found:" + Encoding.UTF8.GetString(value) : "missing");
                }
                catch (ArgumentException e)
                {
                    Results.Add(e.ParamName ?? "(no name)");
                }
            }

            Done = true;
        }
    }
}
