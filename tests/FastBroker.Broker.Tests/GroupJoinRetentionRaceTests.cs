using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// A work-queue group created while a retention pass runs: the pass asks the broker for its floor before it takes the
/// journal's segment list, so a group created in between (at the topic's tail) was not in the floor it got, and the pass
/// deleted the segment the group's feed reader had just been placed in. The reader then skipped to the first retained
/// record, which the group (whose offsets must be dense) refused at every pump: the group delivered nothing ever again,
/// and its ack floor, below everything kept, stopped the topic's retention for good.
/// </summary>
public class GroupJoinRetentionRaceTests
{
    [Fact]
    public async Task A_group_created_while_a_retention_pass_asks_its_floor_is_not_passed_by_that_pass_and_delivers_every_message()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("jobs", RetentionTests.SmallSegments);
        await RetentionTests.PublishAsync(f.Broker, "jobs");
        var journal = RetentionTests.JournalOf(f.Broker, "jobs");
        RetentionTests.SealAll(journal);

        // The group is created between the pass's floor question (answered without it) and its deletion.
        var brokerFloor = journal.RetentionFloor!;
        WorkQueueMember? member = null;
        long firstAtJoin = -1;
        journal.RetentionFloor = () =>
        {
            var floor = brokerFloor();
            if (member is null)
            {
                firstAtJoin = journal.FirstOffset;
                member = f.Broker.JoinGroup("jobs", "workers", GroupOptions.Default with { Prefetch = 256 });
            }

            return floor;
        };
        journal.ApplyRetention();
        Assert.NotNull(member);
        journal.RetentionFloor = brokerFloor;

        // Every message from where the group started (the tail when it joined) to the head, in order, once.
        var offsets = new List<long>();
        Eventually.True(() =>
        {
            var c = new Collected();
            var r = new Recorder(c);
            member.Fetch(256, ref r);
            foreach (var m in c.Items)
            {
                offsets.Add(m.Offset);
                Assert.True(member.Ack(m.Offset, m.DeliveryCount), $"ack of {m.Offset}");
            }

            return offsets.Count > 0 && offsets[^1] == RetentionTests.Count - 1;
        }, $"the group delivers up to the head (delivered {offsets.Count}, first kept {journal.FirstOffset}, group {f.Broker.GetSnapshot().Groups.Single()})");
        Assert.Equal(Enumerable.Range((int)firstAtJoin, RetentionTests.Count - (int)firstAtJoin).Select(i => (long)i), offsets);

        // All acked: the group's floor is at the head, and retention goes on.
        await Eventually.TrueAsync(() => f.Broker.GetSnapshot().Groups.Single().AckFloor == RetentionTests.Count, "the ack floor reaches the head");
        Eventually.True(() =>
        {
            journal.ApplyRetention();
            return journal.FirstOffset > firstAtJoin;
        }, "retention deletes what the group acked");
    }
}
