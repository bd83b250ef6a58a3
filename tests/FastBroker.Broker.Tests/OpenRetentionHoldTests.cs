using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// A topic's journal starts its flusher, whose retention passes begin about a second later, as the broker's open opens
/// it; the broker attaches its retention floor (groups' ack floors, durable subscriptions) only once every topic is
/// open and the groups' state files are read. A pass in between ran with no floor at all: on a broker whose open takes
/// longer than that (hundreds of topics, a loaded machine), it deleted what a work-queue group had not acked.
/// </summary>
public class OpenRetentionHoldTests
{
    [Fact]
    public async Task A_journal_opened_by_the_broker_holds_retention_until_the_broker_attaches_its_floors()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("orders", RetentionTests.SmallSegments);
        using (var member = f.Broker.JoinGroup("orders", "billing", GroupOptions.Default with { Prefetch = 256 }))
        {
            await RetentionTests.PublishAsync(f.Broker, "orders");
            RetentionTests.AckFirst(member, 1000);
            await Eventually.TrueAsync(() => f.Broker.GetSnapshot().Groups.Single().AckFloor == 1000, "the ack floor reaches 1000");
        }

        await f.Broker.DisposeAsync();

        // The topics as the broker's open has them before it attaches its floors.
        var topics = new TopicRegistry(BrokerFixture.Options(f.DataDirectory));
        try
        {
            topics.LoadAll();
            Assert.True(topics.TryGet("orders", out var t));
            var journal = t.Journal!;
            RetentionTests.SealAll(journal);
            journal.ApplyRetention();
            Assert.True(journal.FirstOffset <= 1000, $"first offset {journal.FirstOffset}: a pass before the broker attached its floors deleted messages the group never acked");
        }
        finally
        {
            topics.Dispose();
        }

        // The broker then holds it at the group's floor.
        await f.RestartAsync();
        var reopened = RetentionTests.JournalOf(f.Broker, "orders");
        RetentionTests.SealAll(reopened);
        Eventually.True(() =>
        {
            reopened.ApplyRetention();
            return reopened.FirstOffset > 0;
        }, "retention deletes below the group's floor");
        Assert.True(reopened.FirstOffset <= 1000, $"first offset {reopened.FirstOffset}");
    }
}
