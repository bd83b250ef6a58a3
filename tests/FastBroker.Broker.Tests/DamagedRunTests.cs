using System.Collections.Concurrent;
using System.Reflection;
using System.Text;
using FastBroker.Journal;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// A run of damaged records, met as one: a reader learns the whole run in one pass over it, the topic counts every one
/// of its offsets and logs the run once (its range), a subscription is told the range and where to go on, and a
/// work-queue group dead-letters each offset of it after one seek past it, not a seek (each a scan of the rest of the
/// run) per offset.
/// </summary>
public class DamagedRunTests
{
    /// <summary>
    /// Three damaged records in a row: each is dead-lettered and each counts in the topic's damaged records, in one line
    /// of the log. Before, the group's reader was told of the first, and the seek past it passed over the next two
    /// silently: the group dead-lettered three offsets, the topic counted one.
    /// </summary>
    [Fact]
    public async Task Every_offset_a_group_dead_letters_of_a_run_of_damaged_records_counts_as_damaged()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        var damaged = (await DamagedTopics.CreateAsync(f, "rot", log, count => Enumerable.Range(count / 2, 3))).Select(d => d.Offset).ToHashSet();

        using var member = f.Broker.JoinGroup("rot", "workers", GroupOptions.Default with { Start = StartPosition.Earliest }, prefetch: 256);
        var seen = DamagedTopics.DeliverAll(member, log, DamagedTopics.Records - damaged.Count, batch: 1000);

        Assert.Equal(Enumerable.Range(0, DamagedTopics.Records).Select(i => (long)i).Where(o => !damaged.Contains(o)), seen.Order());
        Eventually.True(() => f.Broker.GetSnapshot().Groups.Single().DeadLettered == damaged.Count, "every damaged offset is dead-lettered");
        var topic = f.Broker.GetSnapshot().Topics.Single(t => t.Name == "rot");
        Assert.True(topic.DamagedRecords == damaged.Count, $"the topic counts {topic.DamagedRecords} damaged records; the group dead-lettered {damaged.Count} damaged offsets ({string.Join(", ", damaged.Order())})");
        Assert.Equal(damaged.Min(), topic.FirstDamagedOffset);
        Assert.Single(log, l => l.Contains($"the records at offsets {damaged.Min()} to {damaged.Max()} are damaged", StringComparison.Ordinal));
    }

    /// <summary>
    /// 3000 records of a sealed segment zeroed (a lost stretch of pages: no length word says where its records lay).
    /// A subscription is told the range and where to go on; a group dead-letters all 3000 and the topic counts them,
    /// and the damage is scanned a bounded number of times (<c>DamageScanBytes</c>, linear in the run), where a seek
    /// per offset (told of one, start at the next) scanned the rest of the run at each of them: about 1500 times it.
    /// </summary>
    [Fact]
    public async Task A_long_zeroed_stretch_is_met_as_one_run_scanned_a_bounded_number_of_times()
    {
        const int Records = 8000;
        const int Run = 3000;
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        var zeroed = await ZeroedRunAsync(f, log, Records, segmentBytes: 512 << 10, padding: 100, journalDir =>
        {
            Assert.True(Directory.GetFiles(journalDir, "*.seg").Length >= 3, "two sealed segments at least");
            return RecordDamage.ZeroRecords(journalDir, 1, 200, Run);
        });
        var (first, resume, runBytes) = (zeroed.Offset, zeroed.Offset + Run, zeroed.End - zeroed.Position);
        Assert.True(f.Broker.Topics.TryGet("rot", out var state));
        var journal = state.Journal!;
        var scanned = DamageScanBytes(journal);

        // A subscription: told the whole run, and where to go on.
        using (var sub = f.Broker.Subscribe("rot", new SubscriptionOptions { Start = StartPosition.AtOffset(first - 10) }))
        {
            var got = new Collected();
            var r = new Recorder(got);
            var e = Assert.Throws<BrokerException>(() =>
            {
                for (var i = 0; i < 100; i++)
                {
                    sub.Fetch(1000, ref r);
                }
            });
            Assert.Equal(BrokerErrorCode.DamagedRecord, e.Code);
            Assert.Contains($"topic 'rot': the records at offsets {first} to {resume - 1} are damaged", e.Message, StringComparison.Ordinal);
            Assert.Contains($"subscribe from offset {resume}", e.Message, StringComparison.Ordinal);
            Assert.Equal(resume, Assert.IsType<JournalCorruptionException>(e.InnerException).ResumeOffset);
            Assert.Equal(10, got.Items.Count);
        }

        using (var after = f.Broker.Subscribe("rot", new SubscriptionOptions { Start = StartPosition.AtOffset(resume) }))
        {
            Assert.Equal(Enumerable.Range((int)resume, 5).Select(i => (long)i), Consume.Drain(after, 5).Select(m => m.Offset).Take(5));
        }

        // A work-queue group: every intact record delivered, each damaged offset dead-lettered and counted.
        using var member = f.Broker.JoinGroup("rot", "workers", GroupOptions.Default with { Start = StartPosition.Earliest }, prefetch: 1000);
        var seen = DamagedTopics.DeliverAll(member, log, Records - Run, batch: 1000);
        Assert.Equal(Enumerable.Range(0, Records).Select(i => (long)i).Where(o => o < first || o >= resume), seen.Order());
        Eventually.True(() => f.Broker.GetSnapshot().Groups.Single().DeadLettered == Run, "every damaged offset is dead-lettered");
        Eventually.True(() => f.Broker.GetSnapshot().Groups.Single().AckFloor == Records, "the group's ack floor passes the damage");
        var topic = f.Broker.GetSnapshot().Topics.Single(t => t.Name == "rot");
        Assert.Equal((Run, first, false), (topic.DamagedRecords, topic.FirstDamagedOffset, topic.DamagedRecordsAtLeast));
        Assert.Single(log, l => l.Contains($"the records at offsets {first} to {resume - 1} are damaged", StringComparison.Ordinal));

        // Linear: each reader that met the run scanned it once, and each seek past it at most one index interval of it.
        // A seek per offset scans (Run / 2) times the run.
        var total = DamageScanBytes(journal) - scanned;
        Assert.True(total <= 4 * runBytes, $"a subscription and a group meeting a zeroed run of {Run} records ({runBytes} bytes) and going past it scanned {total} bytes of damage");
    }

    /// <summary>
    /// A zeroed run of 70,000 records, more than the group's window (65,536 offsets above its floor): the group
    /// dead-letters them as the window makes room (each stored dead letter moves the floor) and then reads on. Marking
    /// them all done at once would put offsets past the window, which its state cannot hold.
    /// </summary>
    [Fact]
    public async Task A_damaged_run_longer_than_the_groups_window_is_dead_lettered_as_the_window_makes_room()
    {
        const int Records = 120_000;
        const int Run = 70_000;
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        var zeroed = await ZeroedRunAsync(f, log, Records, segmentBytes: 4 << 20, padding: 0, journalDir =>
        {
            var segments = Directory.GetFiles(journalDir, "*.seg").Order(StringComparer.Ordinal).ToArray();
            Assert.True(segments.Length >= 2 && DamagedTopics.RecordCount(segments[0]) > Run + 20, $"{segments.Length} segments, {DamagedTopics.RecordCount(segments[0])} records in the first");
            return RecordDamage.ZeroRecords(journalDir, 0, 10, Run);
        });

        using var member = f.Broker.JoinGroup("rot", "workers", GroupOptions.Default with { Start = StartPosition.Earliest }, prefetch: 1000);
        var seen = DamagedTopics.DeliverAll(member, log, Records - Run, batch: 1000);
        Assert.Equal(Enumerable.Range(0, Records).Select(i => (long)i).Where(o => o < zeroed.Offset || o >= zeroed.Offset + Run), seen.Order());
        Eventually.True(() => f.Broker.GetSnapshot().Groups.Single().DeadLettered == Run, "every damaged offset is dead-lettered");
        Eventually.True(() => f.Broker.GetSnapshot().Groups.Single().AckFloor == Records, "the group's ack floor passes the damage");
        Assert.Equal(Run, f.Broker.GetSnapshot().Topics.Single(t => t.Name == "rot").DamagedRecords);
    }

    /// <summary>
    /// Topic "rot" with <paramref name="records"/> records ("b{offset}:" and <paramref name="padding"/> zero bytes) in
    /// segments of <paramref name="segmentBytes"/>; the broker is closed, <paramref name="zero"/> damages its journal
    /// directory, and the broker opens it again without verifying sealed segments (the damage stays for readers to meet).
    /// </summary>
    private static async Task<(string Segment, long Offset, long Position, long End)> ZeroedRunAsync(
        BrokerFixture f, ConcurrentQueue<string> log, int records, int segmentBytes, int padding, Func<string, (string Segment, long Offset, long Position, long End)> zero)
    {
        f.Broker.CreateTopic("rot", TopicOptions.Default with { SegmentBytes = segmentBytes, MaxMessageBytes = 16 << 10 });
        for (var i = 0; i < records; i++)
        {
            await f.Broker.PublishAsync("rot", Encoding.UTF8.GetBytes($"b{i}:").Concat(new byte[padding]).ToArray());
        }

        var journalDir = Path.Combine(f.DataDirectory, "topics", "rot", "journal");
        (string Segment, long Offset, long Position, long End) zeroed = default;
        await f.RestartAsync(o => o with { VerifySealedSegmentsOnOpen = false, Log = log.Enqueue }, whileClosed: () => zeroed = zero(journalDir));
        return zeroed;
    }

    /// <summary>The journal's internal count of damaged bytes its seeks and readers scanned (internal to the journal, whose internals this assembly does not see).</summary>
    private static long DamageScanBytes(JournalLog journal) =>
        (long)typeof(JournalLog).GetProperty("DamageScanBytes", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(journal)!;
}
