using System.Collections.Concurrent;
using System.Text;
using FastBroker.Journal;
using FastBroker.Replication;
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
        // A 10 s heartbeat timeout: a loaded machine must not detach b, whose re-attach reopens the copy this test holds.
        var (a, b) = await InProcessPair.StartAsync(dir, BrokerOptions.Default, o => o with { HeartbeatTimeout = TimeSpan.FromSeconds(10) });
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
                copy = b.Replica!.JournalOf(Topic)!; // the copy b has open now
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
        await using var pair = await StartProxiedWithFirstRecordAsync(dir, log, o => o, Stream, TopicOptions.Default with { SegmentBytes = 1 << 20, MaxMessageBytes = 64 << 10, RetentionBytes = Limit });
        var (a, b, proxy, primary) = (pair.A, pair.B, pair.Proxy, pair.Journal);

        // The sender's socket buffers take the first few MiB; after that, every MiB published stays on the primary.
        proxy!.Stall();
        var head = 1;
        while (primary.SizeOnDisk <= Limit + (2 << 20))
        {
            Assert.True(head < 3072, $"96 MiB published and retention still keeps the primary within its limit: the replicator does not hold it back ({primary.SizeOnDisk} bytes)");
            var chunk = Enumerable.Range(head, 32).Select(i => a.Broker!.PublishAsync(Stream, Payloads.Padded($"r{i}|", 32 << 10)).AsTask());
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

    /// <summary>
    /// The replicator's hold on retention is bounded (<see cref="Replication.ReplicationOptions.MaxRetentionHoldBytes"/>).
    /// A standby that stays attached but stops reading (a stalled proxy, the link kept up by a long heartbeat timeout)
    /// in local ack mode, where producers never wait for it: the primary's journal stays within its retention plus the
    /// bound however much is published, retention passes the standby, and when it reads again the link ends with a
    /// line naming the topic and offsets; the standby restarts its copy at the primary's oldest record and catches up,
    /// holding every record the primary keeps.
    /// </summary>
    [Fact]
    public async Task Retention_passes_a_standby_that_holds_it_back_past_the_bound_and_its_copy_restarts()
    {
        const string Stream = "lagging.stream";
        const int Segment = 1 << 20;
        const long Limit = 4 << 20;
        const long Hold = 2 << 20;
        const long Bound = Limit + Hold + Segment; // one segment of slack: the active one may have just rolled
        using var dir = new TempDirectory();
        var log = new ConcurrentQueue<string>();
        await using var pair = await StartProxiedWithFirstRecordAsync(dir, log, o => o with { MaxRetentionHoldBytes = Hold }, Stream, TopicOptions.Default with { SegmentBytes = Segment, MaxMessageBytes = 64 << 10, RetentionBytes = Limit, Acks = AckMode.Local });
        var (a, b, proxy, primary) = (pair.A, pair.B, pair.Proxy, pair.Journal);

        // The sender's socket buffers take the first few MiB; then the standby holds retention back, up to the bound.
        proxy!.Stall();
        var head = 1;
        async Task PublishChunk()
        {
            var chunk = Enumerable.Range(head, 32).Select(i => a.Broker!.PublishAsync(Stream, Payloads.Padded($"r{i}|", 32 << 10)).AsTask());
            Assert.Equal(Enumerable.Range(head, 32).Select(i => (long)i), await Task.WhenAll(chunk));
            head += 32;
            await Eventually.TrueAsync(() => AllSealed(primary), "a seals its closed segments");
            primary.ApplyRetention();
            Assert.True(primary.SizeOnDisk <= Bound, $"{head} messages of 32 KiB published, the primary keeps {primary.SizeOnDisk} bytes from offset {primary.FirstOffset}: more than retention ({Limit}) plus the hold bound ({Hold})");
        }

        while (primary.PinOverrides == 0)
        {
            Assert.True(head < 1024, $"32 MiB published and retention never passed the stalled standby ({primary.SizeOnDisk} bytes kept)");
            await PublishChunk();
        }

        // Passed once, it never holds more than the bound again.
        var passedAt = head;
        for (var mib = 0; mib < (Limit + Hold) >> 20; mib++)
        {
            await PublishChunk();
        }

        output.WriteLine($"stalled: {head} messages of 32 KiB published (passed at {passedAt}), {primary.SizeOnDisk >> 10} KiB kept from offset {primary.FirstOffset}, {primary.PinOverrides} pin overrides");
        // 0 while the sender is blocked in a send; 1 once a send fitted in the socket buffers and the sender's reader,
        // parked for it (a send from the mapping copies what the socket has not taken within 100 ms), met the gap: the
        // link ended, and b's next attach (through the stalled proxy) restarts its copy once it reads again.
        Assert.InRange(NodeStatus.Parse(a.GetStatusJson()).Standby!.RetentionPassed, 0, 1);
        proxy.Resume();

        // The sender ships what it still had mapped, meets the gap and ends the link; b restarts its copy at a's tail.
        NodeStatus? status = null;
        await Eventually.TrueAsync(
            () => (status = NodeStatus.Parse(a.GetStatusJson())) is { Standby.RetentionPassed: >= 1 } && status.StandbyCaughtUp(Stream),
            "b restarts its copy and catches up");
        Assert.Equal(1, status!.Standby!.RetentionPassed);
        Assert.Equal(head, status.Standby.Topics.Single(t => t.Topic == Stream).Head);
        var line = Assert.Single(log, l => l.Contains("retention passed a lagging standby", StringComparison.Ordinal));
        output.WriteLine(line);
        Assert.Contains($"topic '{Stream}'", line, StringComparison.Ordinal);
        Assert.Matches(@"needs offset \d+ but the primary's journal continues at \d+", line);
        Assert.Contains(NodeStatus.Parse(b.GetStatusJson()).Replica!.Truncations, t => t.Contains($"topic '{Stream}': copy restarted at offset", StringComparison.Ordinal));

        // b holds exactly what a keeps (a pinning reader keeps a's retention still while comparing), and no more than
        // what a kept when b's copy restarted.
        var copy = b.Replica!.JournalOf(Stream)!;
        using var kept = primary.OpenReader(ReadStart.Beginning, pinRetention: true);
        var first = kept.NextOffset;
        Assert.True(first > 0, "a's retention deleted the start");
        Assert.Equal(head, copy.NextOffset);
        Assert.InRange(copy.FirstOffset, 1, first);
        using var copied = copy.OpenReader(ReadStart.FromOffset(copy.FirstOffset));
        var expected = copy.FirstOffset;
        while (copied.TryRead(out var c))
        {
            Assert.Equal(expected, c.Offset);
            Assert.StartsWith($"r{expected}|", Encoding.UTF8.GetString(c.Payload[..16]), StringComparison.Ordinal);
            if (expected >= first)
            {
                Assert.True(kept.TryRead(out var k), $"a keeps offset {expected}");
                Assert.Equal(expected, k.Offset);
                Assert.True(k.Payload.SequenceEqual(c.Payload), $"payload of offset {expected}");
            }

            expected++;
        }

        Assert.Equal(head, expected);
        Assert.False(kept.TryRead(out _));
        Assert.Equal(0, copied.Skipped);
    }

    /// <summary>
    /// A standby that falls behind on a slow link and then stops reading: the sender, catching up (a whole budget each
    /// pass), blocks in a send in the middle of its reading, and retention passes it (the hold bound) and deletes the
    /// segment its reader is in. The reader parks at each batch's end and before a send of copied records, so the
    /// retention pass lets go of that segment: no mapping of a deleted file of the primary's journal stays while the
    /// standby is stalled. Segments of 64 KiB: every run is copied into a frame (none is sent from the mapping, which a
    /// blocked send must keep). When the standby reads again the link ends at the gap and its copy restarts.
    /// </summary>
    [Fact]
    public Task A_sender_blocked_on_a_lagging_standby_keeps_no_deleted_segment_mapped() =>
        StalledSenderKeepsNoDeletedSegmentAsync(
            "blocked.stream",
            TopicOptions.Default with { SegmentBytes = 64 << 10, MaxMessageBytes = 32 << 10, RetentionBytes = 512 << 10, Acks = AckMode.Local },
            holdBytes: 16 << 20,
            recordBytes: 8 << 10,
            burst: 256,
            mibAfterStall: 16,
            how: "");

    /// <summary>
    /// As above, with runs the sender sends straight from the mapping (segments of 1 MiB, records of 32 KiB: runs of
    /// 256 KiB, over the 64 KiB it copies): the send that blocks on the stalled standby is one from the mapping of the
    /// segment retention then deletes. A send from the mapping that the socket has not taken within a bound copies what
    /// is left and parks the reader, so no mapping of a deleted file stays while the standby is stalled.
    /// </summary>
    [Fact]
    public Task A_sender_blocked_sending_from_the_mapping_keeps_no_deleted_segment_mapped() =>
        StalledSenderKeepsNoDeletedSegmentAsync(
            "mapped.stream",
            TopicOptions.Default with { SegmentBytes = 1 << 20, MaxMessageBytes = 64 << 10, RetentionBytes = 4 << 20, Acks = AckMode.Local },
            holdBytes: 8 << 20,
            recordBytes: 32 << 10,
            burst: 32,
            mibAfterStall: 24,
            how: " (a send from the mapping blocked)");

    /// <summary>
    /// The two tests above: 12 MiB published over a slow link (256 KiB/s; far more than the socket buffers take, less
    /// than the hold bound), so the sender is catching up when b stalls; <paramref name="mibAfterStall"/> MiB more, so
    /// retention passes it; then no deleted segment of a's journal may stay mapped while b is stalled, and once b reads
    /// again its copy restarts.
    /// </summary>
    private static async Task StalledSenderKeepsNoDeletedSegmentAsync(string stream, TopicOptions topic, long holdBytes, int recordBytes, int burst, int mibAfterStall, string how)
    {
        using var dir = new TempDirectory();
        var log = new ConcurrentQueue<string>();
        await using var pair = await StartProxiedWithFirstRecordAsync(dir, log, o => o with { MaxRetentionHoldBytes = holdBytes }, stream, topic);
        var (a, proxy, primary) = (pair.A, pair.Proxy, pair.Journal);
        var head = 1;
        async Task PublishAsync(int mib)
        {
            for (var end = head + (mib * ((1 << 20) / recordBytes)); head < end; head += burst)
            {
                var sent = Enumerable.Range(head, burst).Select(i => a.Broker!.PublishAsync(stream, Payloads.Padded($"r{i}|", recordBytes)).AsTask());
                Assert.Equal(Enumerable.Range(head, burst).Select(i => (long)i), await Task.WhenAll(sent));
                await Eventually.TrueAsync(() => AllSealed(primary), "a seals its closed segments");
                primary.ApplyRetention();
            }
        }

        proxy!.BytesPerSecond = 256 << 10;
        await PublishAsync(12);
        proxy.Stall();
        await PublishAsync(mibAfterStall);
        Assert.True(primary.PinOverrides > 0, $"retention never passed the lagging standby ({primary.SizeOnDisk} bytes kept from offset {primary.FirstOffset})");

        var left = new List<string>();
        var released = Eventually.TryWait(
            () =>
            {
                primary.ApplyRetention();
                return (left = DeletedMappings(primary.Directory)).Count == 0;
            },
            TimeSpan.FromSeconds(20));
        Assert.True(released, $"a deleted segment of a's journal stays mapped while b is stalled{how}: {string.Join(", ", left)}");
        Assert.Equal(0, NodeStatus.Parse(a.GetStatusJson()).Standby!.RetentionPassed); // still stalled: the link is up

        proxy.BytesPerSecond = 0;
        proxy.Resume();
        await Eventually.TrueAsync(
            () => NodeStatus.Parse(a.GetStatusJson()) is { Standby.RetentionPassed: >= 1 } status && status.StandbyCaughtUp(stream),
            "b restarts its copy and catches up");

        // b restarts its copy at a's oldest record once it reads again. A retention pass that deletes more between the
        // link's end and the new link's read of the topic passes it once more (seen once on a loaded machine), and it
        // restarts again: every end of the link is such a pass, and there is at least one.
        var ends = log.Where(l => l.Contains("disconnected", StringComparison.Ordinal)).ToList();
        Assert.True(
            ends.Count >= 1 && ends.All(l => l.Contains("retention passed a lagging standby", StringComparison.Ordinal)),
            $"every end of b's link is retention passing it, at least one: [{string.Join(" | ", ends)}]");
    }

    /// <summary>Mappings in this process of files in <paramref name="directory"/> that were unlinked (<c>/proc/self/maps</c>).</summary>
    private static List<string> DeletedMappings(string directory)
    {
        var prefix = " " + Path.GetFullPath(directory) + "/";
        return [.. File.ReadLines("/proc/self/maps").Where(l => l.Contains(prefix, StringComparison.Ordinal) && l.EndsWith(" (deleted)", StringComparison.Ordinal)).Select(l => l[(l.IndexOf(prefix, StringComparison.Ordinal) + 1)..])];
    }

    /// <summary><c>fastbroker serve --max-retention-hold-mb</c> reaches the primary's replicator (its <c>/status</c>).</summary>
    [Fact]
    public async Task Serve_passes_the_retention_hold_bound_to_the_primarys_replicator()
    {
        await using var pair = new PairHarness();
        var (a, _, _) = await pair.StartConfiguredPairAsync(["--max-retention-hold-mb", "3"], []);
        var status = await a.WaitForAsync(s => s.Standby is { Attached: true }, "b attached");
        using var json = System.Text.Json.JsonDocument.Parse(status.Json);
        var standby = json.RootElement.GetProperty("standby");
        Assert.Equal(3L << 20, standby.GetProperty("maxRetentionHoldBytes").GetInt64());
        Assert.Equal(0, standby.GetProperty("retentionPassed").GetInt64());
    }

    /// <summary>Only sealed segments are deleted; the flusher seals closed ones and then writes their index file.</summary>
    private static bool AllSealed(JournalLog journal) => Directory.GetFiles(journal.Directory, "*.idx").Length >= journal.SegmentCount - 1;

    private readonly struct Collect(List<(long Offset, int Count)> into) : IMessageHandler
    {
        public void OnMessage(scoped in MessageView message) => into.Add((message.Offset, message.DeliveryCount));
    }

    /// <summary>
    /// Two in-process nodes, b reaching a through a proxy the test can stall, with a heartbeat silence far beyond the
    /// test's waits (the link stays up through a stall); <paramref name="stream"/> created on a and its first 32 KiB
    /// record (offset 0) held by b. a logs into <paramref name="log"/>.
    /// </summary>
    private static async Task<ProxiedPair> StartProxiedWithFirstRecordAsync(TempDirectory dir, ConcurrentQueue<string> log, Func<ReplicationOptions, ReplicationOptions> configure, string stream, TopicOptions topicOptions)
    {
        TcpProxy? proxy = null;
        var (a, b) = await InProcessPair.StartAsync(
            dir,
            BrokerOptions.Default,
            o => configure(o with { HeartbeatTimeout = TimeSpan.FromMinutes(2), Log = o.NodeId == "a" ? log.Enqueue : null }),
            port => (proxy = new TcpProxy(port)).Endpoint);
        var pair = new ProxiedPair(a, b, proxy!);
        try
        {
            a.Broker!.CreateTopic(stream, topicOptions);
            Assert.Equal(0, await a.Broker.PublishAsync(stream, Payloads.Padded("r0|", 32 << 10)));
            await Eventually.TrueAsync(() => NodeStatus.Parse(a.GetStatusJson()).StandbyCaughtUp(stream), "b has the topic");
            Assert.True(a.Broker.Topics.TryGet(stream, out var topic));
            pair.Journal = topic.Journal!;
            return pair;
        }
        catch
        {
            await pair.DisposeAsync();
            throw;
        }
    }

    /// <summary>The nodes and proxy of <see cref="StartProxiedWithFirstRecordAsync"/>, and a's journal of its topic; disposed in reverse order.</summary>
    private sealed class ProxiedPair(ReplicatedNode a, ReplicatedNode b, TcpProxy proxy) : IAsyncDisposable
    {
        public ReplicatedNode A { get; } = a;

        public ReplicatedNode B { get; } = b;

        public TcpProxy Proxy { get; } = proxy;

        public JournalLog Journal { get; set; } = null!;

        public async ValueTask DisposeAsync()
        {
            await B.DisposeAsync();
            await A.DisposeAsync();
            await Proxy.DisposeAsync();
        }
    }
}
