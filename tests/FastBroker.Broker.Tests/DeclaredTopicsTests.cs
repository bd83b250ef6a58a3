using System.Collections.Concurrent;

namespace FastBroker.BrokerTests;

/// <summary>
/// <see cref="BrokerOptions.Topics"/>: topics a broker declares at every open, so that a broker run from its options
/// alone (<c>fastbroker serve --topic</c>) has its topics, with their settings, before any client comes.
/// </summary>
public class DeclaredTopicsTests
{
    private static readonly Dictionary<string, TopicOptions> Declared = new()
    {
        ["orders"] = TopicOptions.Default with { SegmentBytes = 1L << 20, MaxMessageBytes = 1024, RetentionAge = TimeSpan.FromHours(1) },
        ["ticks"] = TopicOptions.Default with { Persistent = false, TransientCapacity = 1024 },
    };

    [Fact]
    public async Task Declared_topics_exist_with_their_settings_when_the_open_returns_and_keep_them_after_a_restart()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { AutoCreateTopics = false, Topics = Declared, Log = log.Enqueue });
        await AssertDeclaredAsync(f.Broker);
        Assert.Equal(BrokerErrorCode.UnknownTopic, (await Assert.ThrowsAsync<BrokerException>(async () => await f.Broker.PublishAsync("other", new byte[8]))).Code);

        // Declaring what exists with the same settings changes nothing and says nothing.
        await f.RestartAsync(o => o with { AutoCreateTopics = false, Topics = Declared, Log = log.Enqueue });
        await AssertDeclaredAsync(f.Broker);
        Assert.DoesNotContain(log, l => l.Contains("declared", StringComparison.Ordinal));
        Assert.Equal(1, f.Broker.GetSnapshot().Topics.Single(t => t.Name == "orders").Head); // the first open's publish is still there
    }

    [Fact]
    public async Task A_declared_topic_that_exists_with_other_settings_keeps_its_own_and_the_difference_is_logged()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Topics = Declared });
        var changed = new Dictionary<string, TopicOptions>(Declared)
        {
            ["orders"] = Declared["orders"] with { MaxMessageBytes = 4096, RetentionAge = null },
        };
        await f.RestartAsync(o => o with { Topics = changed, Log = log.Enqueue });

        var line = Assert.Single(log, l => l.Contains("topic 'orders' exists with other settings", StringComparison.Ordinal));
        Assert.Contains("max message size: 1024 bytes here, declared 4096 bytes", line, StringComparison.Ordinal);
        Assert.Contains("retention age: 3600000 ms here, declared none", line, StringComparison.Ordinal);
        var refused = await Assert.ThrowsAsync<BrokerException>(async () => await f.Broker.PublishAsync("orders", new byte[2000]));
        Assert.Equal(BrokerErrorCode.MessageTooLarge, refused.Code);
    }

    [Fact]
    public void Declared_settings_the_broker_cannot_use_are_refused_with_the_topics_name()
    {
        var bad = BrokerOptions.Default with { Topics = new Dictionary<string, TopicOptions> { ["orders"] = TopicOptions.Default with { MaxMessageBytes = 0 } } };
        var refused = Assert.Throws<BrokerException>(bad.Validate);
        Assert.Equal(BrokerErrorCode.InvalidArgument, refused.Code);
        Assert.StartsWith("Topics['orders']: ", refused.Message, StringComparison.Ordinal);

        var badName = BrokerOptions.Default with { Topics = new Dictionary<string, TopicOptions> { ["a b"] = TopicOptions.Default } };
        Assert.Equal(BrokerErrorCode.InvalidName, Assert.Throws<BrokerException>(badName.Validate).Code);
    }

    private static async Task AssertDeclaredAsync(Broker broker)
    {
        var topics = broker.GetSnapshot().Topics;
        Assert.True(topics.Single(t => t.Name == "orders").Persistent);
        Assert.False(topics.Single(t => t.Name == "ticks").Persistent);
        var tooLarge = await Assert.ThrowsAsync<BrokerException>(async () => await broker.PublishAsync("orders", new byte[2000]));
        Assert.Equal(BrokerErrorCode.MessageTooLarge, tooLarge.Code);
        if (topics.Single(t => t.Name == "orders").Head == 0)
        {
            await broker.PublishAsync("orders", new byte[100]);
        }
    }
}
