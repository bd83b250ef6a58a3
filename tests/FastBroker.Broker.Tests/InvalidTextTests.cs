using System.Text;

namespace FastBroker.BrokerTests;

/// <summary>
/// Text the embedded broker stores as bytes (header names and text values, a NACK's error) that is not valid UTF-16 (a
/// lone surrogate) is refused with an ArgumentException naming the parameter, as the .NET client refuses it: written
/// as U+FFFD it would be another header. Topic, durable and group names are ASCII and refuse it as any other character.
/// </summary>
public class InvalidTextTests
{
    [Fact]
    public void MessageHeaders_refuses_a_lone_surrogate_in_a_name_or_a_text_value_and_adds_nothing()
    {
        var headers = new MessageHeaders().Add("ok", "fine");
        var length = headers.Length;

        Assert.Equal("name", Assert.Throws<ArgumentException>(() => headers.Add("ccy\uD800", "EUR")).ParamName);
        Assert.Equal("value", Assert.Throws<ArgumentException>(() => headers.Add("ccy", "EU\uDC00R")).ParamName);
        Assert.Equal("name", Assert.Throws<ArgumentException>(() => headers.Add("\uDC00", [1, 2])).ParamName);
        Assert.Equal("name", Assert.Throws<ArgumentException>(() => headers.Add("n\uD800", 42L)).ParamName);
        var reason = Assert.Throws<ArgumentException>(() => headers.Add("ccy", new string('x', 300) + "\uD800")).Message;
        Assert.Contains("lone surrogate at index 300", reason, StringComparison.Ordinal);
        Assert.Equal(length, headers.Length);

        // A surrogate pair is valid text: its 4-byte UTF-8 encoding is stored, the name found by it.
        headers.Add("emoji\U0001F600", "\U0001F600");
        Assert.True(MessageHeaders.TryGet(headers.Encoded, Encoding.UTF8.GetBytes("emoji\U0001F600"), out var value));
        Assert.Equal(Encoding.UTF8.GetBytes("\U0001F600"), value.ToArray());
    }

    [Fact]
    public async Task Names_with_a_lone_surrogate_are_refused_as_invalid_names()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        Assert.Equal(BrokerErrorCode.InvalidName, Assert.Throws<BrokerException>(() => b.TryPublish("orders\uD800", [1])).Code);
        Assert.Equal(BrokerErrorCode.InvalidName, Assert.Throws<BrokerException>(() => b.Subscribe("orders.\uD800")).Code);
        Assert.Equal(BrokerErrorCode.InvalidName, Assert.Throws<BrokerException>(() => b.Subscribe("orders", new SubscriptionOptions { DurableName = "d\uDC00" })).Code);
        Assert.Equal(BrokerErrorCode.InvalidName, Assert.Throws<BrokerException>(() => b.JoinGroup("jobs", "g\uD800")).Code);
        Assert.Equal(BrokerErrorCode.InvalidName, Assert.Throws<BrokerException>(() => b.CreateTopic("t\uD800")).Code);
    }

    [Fact]
    public async Task A_nack_error_with_a_lone_surrogate_is_refused_and_the_delivery_stays_the_members()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        b.CreateTopic("jobs");
        await b.PublishAsync("jobs", BrokerFixture.Utf8("job"));
        using var member = b.JoinGroup("jobs", "workers", GroupOptions.Default with { Start = StartPosition.Earliest });
        var m = await FirstAsync(member);

        var e = Assert.Throws<ArgumentException>(() => member.Nack(m, requeue: false, error: "broke\uD800"));
        Assert.Equal("error", e.ParamName);
        Assert.True(member.Ack(m), "the refused NACK changed the delivery");
    }

    [Fact]
    public async Task A_dead_letters_error_cut_at_1024_characters_keeps_a_surrogate_pair_whole()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        b.CreateTopic("jobs");
        await b.PublishAsync("jobs", BrokerFixture.Utf8("job"));
        using var dlq = b.Subscribe("jobs.dlq", new SubscriptionOptions { Start = StartPosition.Earliest });
        using var member = b.JoinGroup("jobs", "workers", GroupOptions.Default with { Start = StartPosition.Earliest });
        var m = await FirstAsync(member);

        // Characters 1023 and 1024 are one emoji: the cut keeps neither half rather than a lone surrogate.
        var error = new string('e', 1023) + "\U0001F600" + "tail";
        Assert.Equal(WorkQueueOutcome.DeadLettered, member.Nack(m, requeue: false, error: error));
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using var letters = dlq.ReadAllAsync(cts.Token).GetAsyncEnumerator(cts.Token);
        Assert.True(await letters.MoveNextAsync());
        var stored = letters.Current.Headers.Single(h => h.Key == "fb-dlq-error").Value;
        Assert.Equal(Encoding.UTF8.GetBytes(new string('e', 1023)), stored);
    }

    private static async Task<Message> FirstAsync(WorkQueueMember member)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await foreach (var m in member.ReadAllAsync(cts.Token))
        {
            return m;
        }

        throw new InvalidOperationException("no delivery");
    }
}
