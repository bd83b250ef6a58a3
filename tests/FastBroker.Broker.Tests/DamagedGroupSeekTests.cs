using System.Buffers.Binary;
using System.Collections.Concurrent;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// A work-queue group's feed past damage it seeks across: a zeroed length word among a sealed segment's records. The
/// group dead-letters the damaged offset, counts it in the topic's damaged records, and delivers every intact record.
/// </summary>
public class DamagedGroupSeekTests
{
    /// <summary>
    /// The length word of a record in the middle of a sealed segment is zeroed. Before, the seek past it (the feed's
    /// <c>SkipDamaged</c>) threw at it like at an end among the records, and the group waited there for ever.
    /// </summary>
    [Fact]
    public async Task A_work_queue_group_goes_past_a_zeroed_length_word_in_the_middle_of_a_sealed_segment()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        var damaged = (await DamagedTopics.CreateAsync(f, "rot", log, count => [count / 2], how: ZeroAfterIndexEntry)).Select(d => d.Offset).ToHashSet();

        using var member = f.Broker.JoinGroup("rot", "workers", GroupOptions.Default with { Start = StartPosition.Earliest }, prefetch: 256);
        var seen = DamagedTopics.DeliverAll(member, log, DamagedTopics.Records - damaged.Count);

        Assert.Equal(Enumerable.Range(0, DamagedTopics.Records).Select(i => (long)i).Where(o => !damaged.Contains(o)), seen.Order());
        Eventually.True(() => f.Broker.GetSnapshot().Groups.Single().AckFloor == DamagedTopics.Records, "the group's ack floor passes the damage");
        Eventually.True(() => f.Broker.GetSnapshot().Groups.Single().DeadLettered == 1, "the damaged offset is dead-lettered");
        Assert.Equal(1, f.Broker.GetSnapshot().Topics.Single(t => t.Name == "rot").DamagedRecords);
    }

    /// <summary>
    /// Zeroes the length word of the record after the first index entry at or after record <paramref name="recordIndex"/>
    /// of the segment, so that the seek past it (to the record after it, no index entry) walks across it from that entry.
    /// </summary>
    private static (string, long, long) ZeroAfterIndexEntry(string journalDirectory, int segmentIndex, int recordIndex)
    {
        var segment = Directory.GetFiles(journalDirectory, "*.seg").Order(StringComparer.Ordinal).ToArray()[segmentIndex];
        var index = File.ReadAllBytes(Path.ChangeExtension(segment, ".idx"));
        var entries = Enumerable.Range(0, BinaryPrimitives.ReadInt32LittleEndian(index.AsSpan(12))).Select(i => BinaryPrimitives.ReadInt32LittleEndian(index.AsSpan(32 + (i * 16)))).ToList();
        var entry = entries.First(e => e >= recordIndex);
        Assert.DoesNotContain(entry + 2, entries);
        return RecordDamage.ZeroLengthWord(journalDirectory, segmentIndex, entry + 1);
    }
}
