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
}
