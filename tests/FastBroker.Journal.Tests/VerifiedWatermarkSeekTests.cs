using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

/// <summary>
/// Readers that start in the middle of a sealed segment the open trusted (a durable subscription resuming after a
/// restart, a start at a time): their seek checks the records from the segment's verified watermark up to the start, so
/// the watermark covers what they check and the next reader from there checks nothing again; damage is still refused.
/// </summary>
public class VerifiedWatermarkSeekTests
{
    private const long T0 = 1_700_000_000_000;

    private static readonly JournalOptions s_trusting = AppendReadTests.Small with { VerifySealedSegmentsOnOpen = false };

    /// <summary>A closed journal of 3000 records, each stamped <c>T0 + offset</c>, its rolled segments sealed.</summary>
    private static TempDirectory StampedJournal()
    {
        var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, AppendReadTests.Small);
        for (long i = 0; i < 3000; i++)
        {
            Assert.True(journal.TryAppend([], [], AppendReadTests.PayloadFor(i), RecordFlags.None, T0 + i, out var offset));
            Assert.Equal(i, offset);
        }

        journal.Commit();
        RetentionTests.SealAll(journal);
        return dir;
    }

    private static ReadStart StartAt(string how, long offset) =>
        how == "offset" ? ReadStart.FromOffset(offset) : ReadStart.FromTimestamp(T0 + offset);

    /// <summary>Reads from <paramref name="start"/> to <paramref name="last"/> (included), checking each record.</summary>
    private static void ReadTo(JournalLog journal, ReadStart start, long first, long last)
    {
        using var reader = journal.OpenReader(start);
        Assert.Equal(first, reader.NextOffset);
        for (var expected = first; expected <= last; expected++)
        {
            Assert.True(reader.TryRead(out var record), $"offset {expected}");
            Assert.Equal(expected, record.Offset);
            Assert.True(record.Payload.SequenceEqual(AppendReadTests.PayloadFor(expected)), $"payload of offset {expected}");
        }
    }

    [Theory]
    [InlineData("offset")]
    [InlineData("timestamp")]
    public void Readers_starting_mid_segment_in_a_trusted_segment_check_its_records_once(string how)
    {
        using var dir = StampedJournal();
        var records = JournalFiles.Records(JournalFiles.Segments(dir.Path)[1]);
        var middle = records[records.Count / 2].Offset;
        var last = records[^1].Offset;
        using var journal = JournalLog.Open(dir.Path, s_trusting);

        ReadTo(journal, StartAt(how, middle), middle, last);
        var first = journal.CrcChecks;
        Assert.True(first >= last - middle + 1 && first <= records.Count, $"the first reader from the middle CRC-checked {first} records ({records.Count} in the segment, {last - middle + 1} read)");

        // A second reader from the same place (a subscription resuming there again): the first's checks covered it.
        ReadTo(journal, StartAt(how, middle), middle, last);
        Assert.True(journal.CrcChecks == first, $"the second reader from the middle of a trusted segment CRC-checked {journal.CrcChecks - first} records the first had checked");

        // So did the records before it: the whole segment is below its watermark, from any start in it.
        ReadTo(journal, StartAt(how, records[0].Offset), records[0].Offset, last);
        ReadTo(journal, StartAt(how, records[records.Count / 4].Offset), records[records.Count / 4].Offset, last);
        Assert.Equal(first, journal.CrcChecks);
    }

    [Fact]
    public void Damage_before_a_mid_segment_start_stops_the_seeks_check_and_damage_past_the_watermark_is_still_refused()
    {
        using var dir = StampedJournal();
        var segment = JournalFiles.Segments(dir.Path)[1];
        var records = JournalFiles.Records(segment);
        var before = records[records.Count / 4];
        var after = records[(records.Count * 3) / 4];
        var middle = records[records.Count / 2].Offset;
        JournalFiles.FlipBit(segment, before.Position + before.Length - 2, bit: 3);
        JournalFiles.FlipBit(segment, after.Position + after.Length - 2, bit: 5);
        using var journal = JournalLog.Open(dir.Path, s_trusting);

        for (var attempt = 0; attempt < 2; attempt++)
        {
            // From the middle: the seek's check stops at the damage before it (the start is not refused for it), the
            // reader reads up to the damage after it and is refused there, each time.
            using var reader = journal.OpenReader(ReadStart.FromOffset(middle));
            for (var expected = middle; expected < after.Offset; expected++)
            {
                Assert.True(reader.TryRead(out var record), $"attempt {attempt}: offset {expected}");
                Assert.Equal(expected, record.Offset);
            }

            var e = Assert.Throws<JournalCorruptionException>(() => reader.TryRead(out _));
            Assert.Equal(after.Position, e.Position);
            Assert.Equal(after.Offset, reader.NextOffset);
        }

        // From the segment's start: refused at the first damage (the watermark never passed it).
        using var fromStart = journal.OpenReader(ReadStart.FromOffset(records[0].Offset));
        for (var expected = records[0].Offset; expected < before.Offset; expected++)
        {
            Assert.True(fromStart.TryRead(out _));
        }

        Assert.Equal(before.Position, Assert.Throws<JournalCorruptionException>(() => fromStart.TryRead(out _)).Position);
    }

    [Fact]
    public void Concurrent_readers_starting_mid_segment_read_good_records_and_never_pass_damage()
    {
        using var dir = StampedJournal();
        var segment = JournalFiles.Segments(dir.Path)[2];
        var records = JournalFiles.Records(segment);
        var victim = records[(records.Count * 2) / 3];
        JournalFiles.FlipBit(segment, victim.Position + victim.Length - 2, bit: 1);
        using var journal = JournalLog.Open(dir.Path, s_trusting);

        // Eight threads, each opening readers at starts spread over the segment before the damage and reading to it.
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var threads = Enumerable.Range(0, 8).Select(t => new Thread(() =>
        {
            try
            {
                for (var i = t; i < records.Count * 2 / 3; i += 37)
                {
                    using var reader = journal.OpenReader(ReadStart.FromOffset(records[i].Offset));
                    for (var expected = records[i].Offset; expected < victim.Offset; expected++)
                    {
                        if (!reader.TryRead(out var record) || record.Offset != expected || !record.Payload.SequenceEqual(AppendReadTests.PayloadFor(expected)))
                        {
                            failures.Enqueue($"thread {t}, start {records[i].Offset}: offset {expected} not read as written");
                            return;
                        }
                    }

                    try
                    {
                        reader.TryRead(out _);
                        failures.Enqueue($"thread {t}, start {records[i].Offset}: the damaged record at offset {victim.Offset} was returned");
                    }
                    catch (JournalCorruptionException e) when (e.Position == victim.Position)
                    {
                    }
                }
            }
            catch (Exception e)
            {
                failures.Enqueue($"thread {t}: {e}");
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.Empty(failures);

        // Every record before the damage is now below the watermark; the damaged one is not, and never will be.
        var checks = journal.CrcChecks;
        ReadTo(journal, ReadStart.FromOffset(records[0].Offset), records[0].Offset, victim.Offset - 1);
        Assert.Equal(checks, journal.CrcChecks);
        using var last = journal.OpenReader(ReadStart.FromOffset(victim.Offset));
        Assert.Equal(victim.Position, Assert.Throws<JournalCorruptionException>(() => last.TryRead(out _)).Position);
    }
}
