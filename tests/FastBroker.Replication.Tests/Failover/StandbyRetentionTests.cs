using System.Collections.Concurrent;
using System.Text;
using FastBroker.Journal;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// The standby's copy of a topic with retention must keep whatever the primary keeps: a work-queue group's unacked
/// messages hold the primary's retention back, and after a failover the group (its state is replicated) needs them
/// on the new primary. And the primary's own retention never deletes what the standby has not received (the
/// replicator's journal readers pin it), so the copy never has a gap. Two in-process nodes on 127.0.0.1, no witness;
/// retention passes run directly.
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class StandbyRetentionTests(ITestOutputHelper output)
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
        await Eventually.TrueAsync(() => AllSealed(copy), "b seals its closed segments");
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

    /// <summary>
    /// Unlike a subscriber's reader, the replicator's does not skip what retention deletes: it holds the primary's
    /// retention back. The standby stops reading (a stalled proxy, the link kept up) while the primary's topic grows
    /// past its limit; retention passes on the primary keep everything the standby has not received, and once it reads
    /// again the copy arrives whole, over the same link (a gap would have ended it: see PrimaryReplicator's GapAhead).
    /// </summary>
    [Fact]
    public async Task The_primary_keeps_what_a_stalled_standby_has_not_received_so_its_copy_has_no_gap()
    {
        const string Stream = "kept.stream";
        const long Limit = 4 << 20;
        using var dir = new TempDirectory();
        var log = new ConcurrentQueue<string>();
        TcpProxy? proxy = null;

        // A heartbeat silence far beyond the test's waits: the link stays up through the stall.
        var (a, b) = await InProcessPair.StartAsync(
            dir,
            BrokerOptions.Default,
            o => o with { HeartbeatTimeout = TimeSpan.FromMinutes(2), Log = o.NodeId == "a" ? log.Enqueue : null },
            port => (proxy = new TcpProxy(port)).Endpoint);
        await using var proxyLifetime = proxy!;
        await using var primaryNode = a;
        await using var standbyNode = b;
        a.Broker!.CreateTopic(Stream, TopicOptions.Default with { SegmentBytes = 1 << 20, MaxMessageBytes = 64 << 10, RetentionBytes = Limit });
        Assert.Equal(0, await a.Broker.PublishAsync(Stream, Payloads.Padded("r0|", 32 << 10)));
        await Eventually.TrueAsync(() => NodeStatus.Parse(a.GetStatusJson()).StandbyCaughtUp(Stream), "b has the topic");
        Assert.True(a.Broker.Topics.TryGet(Stream, out var topic));
        var primary = topic.Journal!;

        // The sender's socket buffers take the first few MiB; after that, every MiB published stays on the primary.
        proxy!.Stall();
        var head = 1;
        while (primary.SizeOnDisk <= Limit + (2 << 20))
        {
            Assert.True(head < 3072, $"96 MiB published and retention still keeps the primary within its limit: the replicator does not hold it back ({primary.SizeOnDisk} bytes)");
            var chunk = Enumerable.Range(head, 32).Select(i => a.Broker.PublishAsync(Stream, Payloads.Padded($"r{i}|", 32 << 10)).AsTask());
            Assert.Equal(Enumerable.Range(head, 32).Select(i => (long)i), await Task.WhenAll(chunk));
            head += 32;
            await Eventually.TrueAsync(() => AllSealed(primary), "a seals its closed segments");
            primary.ApplyRetention();
        }

        output.WriteLine($"stalled: {head} messages of 32 KiB published, {primary.SizeOnDisk >> 20} MiB kept from offset {primary.FirstOffset}");
        proxy.Resume();
        await Eventually.TrueAsync(() => NodeStatus.Parse(a.GetStatusJson()).StandbyCaughtUp(Stream), "b catches up");
        Assert.DoesNotContain(log, l => l.Contains("disconnected", StringComparison.Ordinal));
        var copy = b.Replica!.JournalOf(Stream)!;
        Assert.Equal(head, copy.NextOffset);
        using var reader = copy.OpenReader(ReadStart.Beginning);
        var expected = reader.NextOffset;
        while (reader.TryRead(out var r))
        {
            Assert.Equal(expected, r.Offset);
            Assert.StartsWith($"r{expected}|", Encoding.UTF8.GetString(r.Payload[..16]), StringComparison.Ordinal);
            expected++;
        }

        Assert.Equal(head, expected);
    }

    /// <summary>Only sealed segments are deleted; the flusher seals closed ones and then writes their index file.</summary>
    private static bool AllSealed(JournalLog journal) => Directory.GetFiles(journal.Directory, "*.idx").Length >= journal.SegmentCount - 1;

    private readonly struct Collect(List<(long Offset, int Count)> into) : IMessageHandler
    {
        public void OnMessage(scoped in MessageView message) => into.Add((message.Offset, message.DeliveryCount));
    }
}
