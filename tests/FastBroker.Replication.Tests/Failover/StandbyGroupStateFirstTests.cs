using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A work-queue group's state reaches the standby apart from the stream, so the standby can hold a topic's
/// <c>groups/</c> before the topic's first records (a group joined right after the topic's creation). Its copy of the
/// topic is created beside it. Since the standby creates copies with the broker's pending-name commit (0225408), a
/// directory without <c>topic.meta</c> holding anything but a creation's leftovers was refused: the link went down at
/// every attach and the copy was never made ("… has no 'topic.meta' and could not be removed (logged); its copy is not
/// created there"), seen as <c>StandbyRetentionTests</c> timing out on "b holds the whole topic durably".
/// </summary>
public sealed class StandbyGroupStateFirstTests
{
    [Fact]
    public async Task A_topic_copy_is_created_beside_group_state_that_came_before_its_first_records()
    {
        using var dir = new TempDirectory();
        // What b holds when a group's state came first: the topic's directory with groups/ and no topic.meta.
        var groups = Path.Combine(dir.Combine("b"), "topics", "jobs.first", "groups");
        Directory.CreateDirectory(groups);
        var (a, b) = await InProcessPair.StartAsync(dir, BrokerOptions.Default, o => o with { HeartbeatTimeout = TimeSpan.FromSeconds(10) });
        await using var primaryNode = a;
        await using var standbyNode = b;

        a.Broker!.CreateTopic("jobs.first", TopicOptions.Default);
        for (var i = 0; i < 10; i++)
        {
            await a.Broker.PublishAsync("jobs.first", new byte[16]);
        }

        if (!Eventually.TryWait(() => NodeStatus.Parse(a.GetStatusJson()).StandbyCaughtUp("jobs.first"), TimeSpan.FromSeconds(30)))
        {
            Assert.Fail($"b does not hold jobs.first 30 s after its 10 records were confirmed; b's status: {b.GetStatusJson()}");
        }

        Assert.True(Directory.Exists(groups), "b removed the group state its copy was created beside");
        Assert.Equal(10, b.Replica!.JournalOf("jobs.first")!.NextOffset);
    }
}
