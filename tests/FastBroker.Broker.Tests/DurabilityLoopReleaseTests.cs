using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// An <c>Fsynced</c> topic starts its durability loop (<see cref="DurabilityNotifier"/>) when its journal opens. When the
/// open of the topics, or a topic's creation, fails after that, the topic is disposed, and before, its loop was not
/// stopped: it stayed parked for good on the disposed journal, one more task leaked per failed attempt. Disposing the
/// topic now stops it (without waiting on a flush of the journal that goes away).
/// </summary>
public sealed class DurabilityLoopReleaseTests
{
    private static readonly TopicOptions s_fsynced = TopicOptions.Default with { SegmentBytes = 1L << 20, MaxMessageBytes = 64 * 1024, Durability = Durability.Fsynced };

    [Fact]
    public async Task An_open_that_a_later_topic_refuses_stops_the_durability_loop_of_an_fsynced_topic_it_opened()
    {
        using var dir = new TempDirectory("fastbroker-durability-loop");
        await using (var broker = await Broker.OpenAsync(BrokerFixture.Options(dir.Path)))
        {
            broker.CreateTopic("a-ledger", s_fsynced);
            broker.CreateTopic("b-broken", s_fsynced with { Durability = Durability.Written });
            Assert.Equal(0, await broker.PublishAsync("a-ledger", "m"u8.ToArray()));
            Assert.Equal(0, await broker.PublishAsync("b-broken", "m"u8.ToArray()));
        }

        // Its journal gone: the open refuses the topic (TopicJournalMissingTests), after it opened "a-ledger" (in order).
        Directory.Delete(dir.Combine("topics", "b-broken", TopicRegistry.JournalDirectory), recursive: true);
        var registry = new TopicRegistry(BrokerFixture.Options(dir.Path));
        var opened = new List<TopicState>();
        registry.TopicOpened = opened.Add;

        var e = Assert.Throws<BrokerException>(registry.LoadAll);

        Assert.Contains("topic 'b-broken'", e.Message, StringComparison.Ordinal);
        var ledger = Assert.Single(opened);
        Assert.Equal("a-ledger", ledger.Name);
        await AssertStoppedAsync(ledger);
    }

    [Fact]
    public async Task A_creation_that_fails_after_its_journal_opened_stops_the_topics_durability_loop()
    {
        using var dir = new TempDirectory("fastbroker-durability-loop");
        var registry = new TopicRegistry(BrokerFixture.Options(dir.Path));
        var opened = new List<TopicState>();
        registry.TopicOpened = opened.Add;
        var failed = false;
        registry.FileStep = step =>
        {
            if (!failed && step.StartsWith("rename ", StringComparison.Ordinal))
            {
                failed = true; // the commit's rename, after the journal opened; the removal that follows goes on
                throw new IOException("test: the commit's rename failed");
            }
        };

        Assert.ThrowsAny<Exception>(() => registry.Create("ledger", s_fsynced, mustBeNew: true));

        await AssertStoppedAsync(Assert.Single(opened));
        registry.Dispose();
    }

    private static async Task AssertStoppedAsync(TopicState topic)
    {
        var loop = Assert.IsType<DurabilityNotifier>(topic.Durability).Loop;
        Assert.NotNull(loop);
        await Eventually.TrueAsync(() => loop.IsCompleted, $"topic '{topic.Name}': its durability loop ends once the topic is disposed", TimeSpan.FromSeconds(15));
        Assert.True(loop.IsCompletedSuccessfully, $"the loop ended {loop.Status}: {loop.Exception}");
    }
}
