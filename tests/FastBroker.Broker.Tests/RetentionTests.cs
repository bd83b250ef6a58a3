using System.Text;
using FastBroker.Journal;
using FastBroker.Testing;
using static FastBroker.BrokerTests.Consume;

namespace FastBroker.BrokerTests;

/// <summary>
/// Topic retention through the broker: the journal deletes whole sealed segments by size or age, but never what an
/// open durable subscription has not committed or a work-queue group has not acked, and nothing else holds it back
/// (a non-durable subscription's position does not: it is told what it missed).
/// Passes are run directly where the test needs to know one happened; one test relies on the flusher's own pass.
/// </summary>
public class RetentionTests
{
    internal const int Count = 5000; // ~140 B records: about 11 segments of 64 KiB

    /// <summary>64 KiB segments, retention by size at 192 KiB (the tests of retention through the broker).</summary>
    internal static readonly TopicOptions SmallSegments = TopicOptions.Default with
    {
        SegmentBytes = 64 << 10,
        MaxMessageBytes = 16 << 10,
        RetentionBytes = 192 << 10,
    };

    [Fact]
    public async Task Size_retention_runs_in_the_background_and_readers_start_at_the_new_tail()
    {
        await using var f = await BrokerFixture.StartAsync();
        var journal = await FilledTopicAsync(f.Broker, "kept");

        // The journal's flusher applies retention every RetentionCheckInterval (5 s).
        await Eventually.TrueAsync(() => journal.SizeOnDisk <= SmallSegments.RetentionBytes, $"the topic shrinks to its retention limit ({journal.SizeOnDisk} bytes in {journal.SegmentCount} segments)");
        var tail = f.Broker.GetSnapshot().Topics.Single(t => t.Name == "kept").Tail;
        Assert.True(tail > 0, $"tail {tail}");

        using var sub = f.Broker.Subscribe("kept", new SubscriptionOptions { Start = StartPosition.Earliest });
        var c = new Collected();
        var r = new Recorder(c);
        Eventually.True(() =>
        {
            sub.Fetch(1000, ref r);
            return c.Items.Count == Count - tail;
        }, "everything from the tail to the head");
        Assert.Equal(Enumerable.Range((int)tail, Count - (int)tail).Select(i => (long)i), c.Items.Select(m => m.Offset));
        Assert.StartsWith($"m{Count - 1}", c.Items[^1].Payload, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_work_queue_group_holds_retention_back_until_its_messages_are_acked()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("jobs", SmallSegments);
        using var member = f.Broker.JoinGroup("jobs", "workers", GroupOptions.Default with { Prefetch = 256 });
        var journal = await FilledTopicAsync(f.Broker, "jobs");
        SealAll(journal);

        for (var pass = 0; pass < 3; pass++)
        {
            Assert.Equal(0, journal.ApplyRetention());
        }

        Assert.Equal(0, journal.FirstOffset);

        // Ack the first half: segments wholly below the ack floor may go, the rest stays.
        AckFirst(member, Count / 2);
        await Eventually.TrueAsync(() => f.Broker.GetSnapshot().Groups.Single().AckFloor == Count / 2, "the ack floor reaches the half");

        RetainedFromEventually(journal);
        Assert.True(journal.FirstOffset <= Count / 2, $"first offset {journal.FirstOffset}: an unacked message was deleted");
    }

    [Fact]
    public async Task After_a_restart_a_group_holds_retention_back_before_any_member_joins_again()
    {
        await using var f = await BrokerFixture.StartAsync();

        // Joined before the topic fills: from then on the group holds retention at its floor (0), so the flusher's own
        // pass (every 5 s) cannot delete the first messages while they are published, and the group's first 1,000 acks
        // are offsets 0 to 999. Joined after, such a pass could start the group past 1,000 and its floor never be 1000.
        f.Broker.CreateTopic("orders", SmallSegments);
        using (var member = f.Broker.JoinGroup("orders", "billing", GroupOptions.Default with { Prefetch = 256 }))
        {
            await FilledTopicAsync(f.Broker, "orders");
            AckFirst(member, 1000);
            await Eventually.TrueAsync(() => f.Broker.GetSnapshot().Groups.Single().AckFloor == 1000, "the ack floor reaches 1000");
        }

        await f.RestartAsync();
        Assert.Empty(f.Broker.GetSnapshot().Groups); // nobody has joined since the restart
        var journal = JournalOf(f.Broker, "orders");
        SealAll(journal);
        RetainedFromEventually(journal);
        Assert.True(journal.FirstOffset <= 1000, $"first offset {journal.FirstOffset}: a message the group never acked was deleted");
    }

    /// <summary>
    /// A group whose state file has a wrong magic (a damaged or foreign header) cannot say what it acked: joining it is
    /// refused until the file is repaired or removed. Meanwhile it holds retention from the oldest message kept when the
    /// broker opened, and the broker says so, so the repaired file finds every message the group had not acked. Its
    /// floor was not held at all, and nothing was reported: retention deleted the messages it had not acked.
    /// </summary>
    [Fact]
    public async Task A_group_whose_state_file_has_a_wrong_magic_holds_retention_back_from_the_oldest_message_and_says_so()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("orders", SmallSegments);
        using (var member = f.Broker.JoinGroup("orders", "billing", GroupOptions.Default with { Prefetch = 256 }))
        {
            await FilledTopicAsync(f.Broker, "orders");
            AckFirst(member, 1000);
            await Eventually.TrueAsync(() => f.Broker.GetSnapshot().Groups.Single().AckFloor == 1000, "the ack floor reaches 1000");
        }

        var path = Path.Combine(f.DataDirectory, "topics", "orders", "groups", "billing.state");
        var saved = Array.Empty<byte>();
        await f.RestartAsync(whileClosed: () =>
        {
            saved = File.ReadAllBytes(path);
            using var file = new FileStream(path, FileMode.Open, FileAccess.Write);
            file.Write("NOTSTATE"u8); // its magic; floor and done marks intact
        });

        Assert.Equal(BrokerErrorCode.StorageError, Assert.Throws<BrokerException>(() => f.Broker.JoinGroup("orders", "billing")).Code);

        // More messages after the restart; the topic is far past its limit, and a refused join changes nothing.
        var more = Enumerable.Range(Count, 1000).Select(i => f.Broker.PublishAsync("orders", Encoding.UTF8.GetBytes($"m{i}").Concat(new byte[100]).ToArray()).AsTask());
        Assert.Equal(Enumerable.Range(Count, 1000).Select(i => (long)i), await Task.WhenAll(more));
        var journal = JournalOf(f.Broker, "orders");
        SealAll(journal);
        for (var pass = 0; pass < 3; pass++)
        {
            var deleted = journal.ApplyRetention();
            Assert.True(deleted == 0 && journal.FirstOffset == 0, $"retention deleted up to offset {journal.FirstOffset} ({deleted} segment(s) in this pass) while the state file of group 'billing' (ack floor 1000) was damaged");
        }

        var report = f.Broker.RecoveryReports.FirstOrDefault(r => r.Contains("'billing'", StringComparison.Ordinal));
        Assert.True(report is not null && report.Contains("not a group state file", StringComparison.Ordinal) && report.Contains("holds retention", StringComparison.Ordinal), $"no recovery report names the damaged state file of group 'billing': [{string.Join("; ", f.Broker.RecoveryReports)}]");

        // Repaired (its saved copy put back), the group resumes at its floor: the messages it never acked were kept.
        await f.RestartAsync(whileClosed: () => File.WriteAllBytes(path, saved));
        using var again = f.Broker.JoinGroup("orders", "billing", GroupOptions.Default with { Prefetch = 16 });
        var first = FetchOne(again, "the first message the group never acked");
        Assert.Equal((1000L, "m1000"), (first.Offset, first.Payload[..5]));
    }

    [Fact]
    public async Task A_durable_subscription_holds_retention_back_while_open_and_not_once_closed()
    {
        await using var f = await BrokerFixture.StartAsync();
        var journal = await FilledTopicAsync(f.Broker, "audit");
        SealAll(journal);

        var subscription = f.Broker.Subscribe("audit", new SubscriptionOptions { DurableName = "auditor", Start = StartPosition.Earliest });
        subscription.Commit("audit", 10);
        for (var pass = 0; pass < 3; pass++)
        {
            Assert.Equal(0, journal.ApplyRetention());
        }

        Assert.Equal(0, journal.FirstOffset);

        subscription.Dispose();
        RetainedFromEventually(journal);
        Assert.True(journal.SizeOnDisk <= SmallSegments.RetentionBytes, $"{journal.SizeOnDisk} bytes left");

        // Resumed at its commit (10), it starts at the first retained message and is told what it lost meanwhile.
        var first = journal.FirstOffset;
        Assert.True(first > 10, $"first retained offset {first}");
        using var resumed = f.Broker.Subscribe("audit", new SubscriptionOptions { DurableName = "auditor", Start = StartPosition.Committed });
        var c = new Collected();
        var r = new Recorder(c);
        Eventually.True(() =>
        {
            resumed.Fetch(1000, ref r);
            return c.Items.Count > 0;
        }, "the first retained message");
        Assert.Equal(first, c.Items[0].Offset);
        Assert.Equal(first - 10, resumed.Missed);
        Assert.Equal(first - 10, f.Broker.GetSnapshot().Subscriptions.Single().Missed);
    }

    /// <summary>
    /// A start at an offset retention deleted begins at the first retained message and counts the gap in Missed, as a
    /// committed position does: a client resuming after a reconnect at its last offset + 1 is told (DROPPED) what it
    /// lost while away. It began there silently, with Missed 0.
    /// </summary>
    [Fact]
    public async Task A_start_at_an_offset_retention_deleted_counts_the_gap_as_missed_like_a_committed_position()
    {
        await using var f = await BrokerFixture.StartAsync();
        var journal = await FilledTopicAsync(f.Broker, "audit");
        SealAll(journal);
        RetainedFromEventually(journal);
        var first = journal.FirstOffset;
        Assert.True(first > 10, $"first retained offset {first}");

        using var fromOffset = f.Broker.Subscribe("audit", new SubscriptionOptions { Start = StartPosition.AtOffset(10) });
        var c = new Collected();
        var r = new Recorder(c);
        Eventually.True(() =>
        {
            fromOffset.Fetch(1, ref r);
            return c.Items.Count > 0;
        }, "the first retained message");
        Assert.Equal(first, c.Items[0].Offset);
        Assert.Equal(first - 10, fromOffset.Missed);

        // At or past the first retained offset nothing was missed.
        using var kept = f.Broker.Subscribe("audit", new SubscriptionOptions { Start = StartPosition.AtOffset(first) });
        c.Items.Clear();
        Eventually.True(() =>
        {
            kept.Fetch(1, ref r);
            return c.Items.Count > 0;
        }, "the first retained message");
        Assert.Equal((first, 0L), (c.Items[0].Offset, kept.Missed));
    }

    /// <summary>
    /// The design brief's slow subscriber: a non-durable subscription that never fetches holds neither producers nor
    /// retention back. 32 MiB go through 1 MiB segments under a 4 MiB limit, and the topic stays within it after every
    /// 2 MiB. Nor does it keep the deleted segment it was in mapped (it holds no message): the file's blocks are freed in
    /// the pass. When it finally fetches, it gets the first retained message, and <see cref="Subscription.Missed"/> says
    /// how many it lost.
    /// </summary>
    [Fact]
    public async Task A_subscription_that_never_fetches_does_not_hold_retention_back_and_is_told_what_it_missed()
    {
        await using var f = await BrokerFixture.StartAsync();
        var options = TopicOptions.Default with { SegmentBytes = 1 << 20, MaxMessageBytes = 64 << 10, RetentionBytes = 4 << 20 };
        f.Broker.CreateTopic("feed", options);
        var journal = JournalOf(f.Broker, "feed");
        using var paused = f.Broker.Subscribe("feed", new SubscriptionOptions { Start = StartPosition.Earliest });

        const int Messages = 1024, Chunk = 64; // 32 KiB each: 32 MiB, eight times the limit, in chunks of 2 MiB
        for (var from = 0; from < Messages; from += Chunk)
        {
            var publishes = Enumerable.Range(from, Chunk).Select(i => f.Broker.PublishAsync("feed", Payloads.Padded($"m{i}|", 32 << 10)).AsTask()).ToList();
            Assert.Equal(Enumerable.Range(from, Chunk).Select(i => (long)i), await Task.WhenAll(publishes)); // never refused
            await Eventually.TrueAsync(
                () =>
                {
                    journal.ApplyRetention();
                    return journal.SizeOnDisk <= options.RetentionBytes;
                },
                $"after {from + Chunk} messages the topic is back within its limit ({journal.SizeOnDisk} bytes in {journal.SegmentCount} segments)");
            Assert.Equal(journal.SegmentCount, Directory.GetFiles(journal.Directory, "*.seg").Length);
            Eventually.True(() => DeletedSegmentMappings(journal) == 0, $"the paused subscription lets go of the deleted segments ({DeletedSegmentMappings(journal)} still mapped)", TimeSpan.FromSeconds(10));
        }

        // Unlinked, and no longer mapped: the pass that deleted it released it (between the two it shows "(deleted)").
        var segment0 = Path.Combine(journal.Directory, "00000000000000000000.seg");
        Eventually.True(() => !File.Exists(segment0) && DeletedSegmentMappings(journal) == 0, "segment 0 is unlinked and unmapped", TimeSpan.FromSeconds(10));
        var first = journal.FirstOffset;
        Assert.True(first > 0, $"first retained {first}");
        var c = new Collected();
        var r = new Recorder(c);
        Eventually.True(
            () =>
            {
                paused.Fetch(64, ref r);
                return c.Items.Count > 0 && c.Items[^1].Offset == Messages - 1;
            },
            "the subscription reads up to the head");

        // One jump from where it was to the first retained message, reported.
        Assert.Equal(Enumerable.Range((int)first, Messages - (int)first).Select(i => (long)i), c.Items.Select(m => m.Offset));
        Assert.All(c.Items, m => Assert.StartsWith($"m{m.Offset}|", m.Payload, StringComparison.Ordinal));
        Assert.Equal(first, paused.Missed);
        Assert.Equal(first, f.Broker.GetSnapshot().Subscriptions.Single().Missed);
    }

    /// <summary>
    /// A subscription that fetched part of segment 0 and then stopped (a consumer out of credit, or gone quiet) does not
    /// keep segment 0 mapped once retention deletes it, so the unlinked file's disk blocks are freed: its mapping
    /// ("(deleted)" in /proc/self/maps) goes within the deadline. Fetching again, the subscription is told what it
    /// missed and resumes at the oldest retained message; nothing reads the unmapped segment.
    /// </summary>
    [Fact]
    public async Task A_subscription_paused_in_a_segment_retention_deletes_lets_go_of_it_and_resumes_at_the_oldest_with_a_gap()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("ticks", SmallSegments);
        var journal = JournalOf(f.Broker, "ticks");
        using var paused = f.Broker.Subscribe("ticks", new SubscriptionOptions { Start = StartPosition.Earliest });
        await PublishAsync(f.Broker, "ticks");
        var segment0 = Path.Combine(journal.Directory, "00000000000000000000.seg");
        Assert.True(File.Exists(segment0), segment0);

        var c = new Collected();
        var r = new Recorder(c);
        Eventually.True(() =>
        {
            paused.Fetch(10 - c.Items.Count, ref r);
            return c.Items.Count == 10;
        }, "the first 10 messages");
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), c.Items.Select(m => m.Offset));

        SealAll(journal);
        Eventually.True(() =>
        {
            journal.ApplyRetention();
            return !File.Exists(segment0);
        }, "retention deletes segment 0");
        Eventually.True(() => DeletedSegmentMappings(journal) == 0, $"the paused subscription lets go of deleted segment 0 ({DeletedSegmentMappings(journal)} mapping(s) of deleted segments)", TimeSpan.FromSeconds(10));

        var first = journal.FirstOffset;
        Assert.True(first > 10, $"first retained {first}");
        c.Items.Clear();
        Eventually.True(() =>
        {
            paused.Fetch(1000, ref r);
            return c.Items.Count == Count - first;
        }, "the rest, from the first retained message");
        Assert.Equal(Enumerable.Range((int)first, Count - (int)first).Select(i => (long)i), c.Items.Select(m => m.Offset));
        Assert.StartsWith($"m{first}", c.Items[0].Payload, StringComparison.Ordinal);
        Assert.Equal(first - 10, paused.Missed);
    }

    /// <summary>Mappings in this process of the topic's segment files that were unlinked (retention deleted them).</summary>
    private static int DeletedSegmentMappings(JournalLog journal)
    {
        var prefix = " " + Path.GetFullPath(journal.Directory) + "/";
        return File.ReadLines("/proc/self/maps").Count(line =>
            line.Contains(prefix, StringComparison.Ordinal) && line.EndsWith(".seg (deleted)", StringComparison.Ordinal));
    }

    /// <summary>Creates <paramref name="topic"/> with the small segments and limit (unless it exists), fills it, returns its journal.</summary>
    private static async Task<JournalLog> FilledTopicAsync(Broker broker, string topic)
    {
        broker.CreateTopic(topic, SmallSegments);
        await PublishAsync(broker, topic);
        return JournalOf(broker, topic);
    }

    /// <summary>Fetches and acks the group's first <paramref name="count"/> messages, in order.</summary>
    internal static void AckFirst(WorkQueueMember member, int count)
    {
        var acked = 0;
        Eventually.True(() =>
        {
            var c = new Collected();
            var r = new Recorder(c);
            member.Fetch(Math.Min(256, count - acked), ref r);
            foreach (var m in c.Items)
            {
                Assert.True(member.Ack(m.Offset, m.DeliveryCount), $"ack of {m.Offset}");
                acked++;
            }

            return acked == count;
        }, $"{count} acked");
    }

    /// <summary>Publishes messages "m<paramref name="from"/>" … (100 zero bytes after each name), all confirmed at offsets from <paramref name="from"/>.</summary>
    internal static async Task PublishAsync(Broker broker, string topic, int from = 0, int count = Count)
    {
        var publishes = Enumerable.Range(from, count)
            .Select(i => broker.PublishAsync(topic, Encoding.UTF8.GetBytes($"m{i}").Concat(new byte[100]).ToArray()).AsTask())
            .ToList();
        Assert.Equal(Enumerable.Range(from, count).Select(i => (long)i), await Task.WhenAll(publishes));
    }

    internal static JournalLog JournalOf(Broker broker, string topic)
    {
        Assert.True(broker.Topics.TryGet(topic, out var t), topic);
        return t.Journal!;
    }

    /// <summary>Only sealed segments are deleted; the flusher seals closed ones and then writes their index file.</summary>
    internal static void SealAll(JournalLog journal) =>
        Eventually.True(() => Directory.GetFiles(journal.Directory, "*.idx").Length >= journal.SegmentCount - 1, "closed segments get sealed");

    /// <summary>Passes until one deletes: a pass stops at a segment the journal's pre-fault thread still holds.</summary>
    private static void RetainedFromEventually(JournalLog journal) =>
        Eventually.True(() =>
        {
            journal.ApplyRetention();
            return journal.FirstOffset > 0;
        }, "retention deletes the oldest segments");
}
