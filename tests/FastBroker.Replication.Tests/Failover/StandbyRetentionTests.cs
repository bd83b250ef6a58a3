using System.Text;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// The standby's copy of a topic with retention must keep whatever the primary keeps: a work-queue group's unacked
/// messages hold the primary's retention back, and after a failover the group (its state is replicated) needs them
/// on the new primary. Two in-process nodes on 127.0.0.1, no witness; retention passes run directly.
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class StandbyRetentionTests
{
    private const string Topic = "jobs.kept";
    private const int Messages = 5000;

    [Fact]
    public async Task The_standby_deletes_only_what_the_primary_no_longer_keeps()
    {
        using var dir = new TempDirectory();
        var (a, b) = await InProcessPair.StartAsync(dir, BrokerOptions.Default);
        await using var primaryNode = a;
        await using var standbyNode = b;

        // About 11 segments of 64 KiB against a 192 KiB limit; the group acks nothing yet, so the primary keeps them all.
        a.Broker!.CreateTopic(Topic, TopicOptions.Default with { SegmentBytes = 64 << 10, MaxMessageBytes = 16 << 10, RetentionBytes = 192 << 10 });
        using var member = a.Broker.JoinGroup(Topic, "workers", GroupOptions.Default with { Prefetch = 256 });
        var publishes = Enumerable.Range(0, Messages).Select(i => a.Broker.PublishAsync(Topic, Encoding.UTF8.GetBytes($"m{i}").Concat(new byte[100]).ToArray()).AsTask()).ToList();
        await Task.WhenAll(publishes);
        await Eventually.TrueAsync(() => NodeStatus.Parse(a.GetStatusJson()).StandbyCaughtUp(Topic), "b holds the whole topic durably");

        var copy = b.Replica!.JournalOf(Topic)!;
        await Eventually.TrueAsync(() => Directory.GetFiles(copy.Directory, "*.idx").Length >= copy.SegmentCount - 1, "b seals its closed segments");
        Assert.True(copy.SizeOnDisk > 2 * (192 << 10), $"the copy is over its limit: {copy.SizeOnDisk} bytes");
        for (var pass = 0; pass < 3; pass++)
        {
            Assert.Equal(0, copy.ApplyRetention());
        }

        Assert.Equal(0, copy.FirstOffset);

        // Everything acked: the primary's retention deletes, and the standby follows once told.
        var acked = 0;
        Eventually.True(() =>
        {
            var batch = new List<(long Offset, int Count)>();
            var collect = new Collect(batch);
            member.Fetch(256, ref collect);
            foreach (var (offset, count) in batch)
            {
                Assert.True(member.Ack(offset, count), $"ack of {offset}");
                acked++;
            }

            return acked == Messages;
        }, "every message acked");
        Assert.True(a.Broker.Topics.TryGet(Topic, out var primaryTopic));
        var primary = primaryTopic.Journal!;
        await Eventually.TrueAsync(
            () =>
            {
                primary.ApplyRetention();
                return primary.FirstOffset > 0;
            },
            "the primary's retention deletes once the group has acked");
        var primaryFirst = primary.FirstOffset;
        await Eventually.TrueAsync(
            () =>
            {
                copy.ApplyRetention();
                return copy.FirstOffset > 0;
            },
            "the standby's retention follows the primary's");
        Assert.True(copy.FirstOffset <= primaryFirst, $"the standby deleted {copy.FirstOffset}, the primary only up to {primaryFirst}");
    }

    private readonly struct Collect(List<(long Offset, int Count)> into) : IMessageHandler
    {
        public void OnMessage(scoped in MessageView message) => into.Add((message.Offset, message.DeliveryCount));
    }
}
