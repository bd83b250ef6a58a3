using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

/// <summary>
/// A start past damage that no intact record follows in its segment (the damage runs to the segment's written end, or
/// the damaged record is the segment's last): the seek goes on with the next segment's first record, as the records
/// after it are where a reader can resume, instead of refusing the start.
/// </summary>
public class SeekPastSegmentEndDamageTests
{
    private const long T0 = 1_700_000_000_000;

    private static readonly JournalOptions s_trusting = AppendReadTests.Small with { VerifySealedSegmentsOnOpen = false };

    [Theory]
    [InlineData("the last record")]
    [InlineData("the records from the middle to the end")]
    public void A_start_past_damage_that_runs_to_its_segments_end_lands_on_the_next_segments_first_record(string damaged)
    {
        using var dir = new TempDirectory();
        using (var journal = JournalLog.Open(dir.Path, AppendReadTests.Small))
        {
            for (long i = 0; journal.SegmentCount < 4; i++)
            {
                Assert.True(journal.TryAppend([], [], AppendReadTests.PayloadFor(i), RecordFlags.None, T0 + (i * 10), out var offset));
                Assert.Equal(i, offset);
            }

            journal.Commit();
            RetentionTests.SealAll(journal);
        }

        var segments = JournalFiles.Segments(dir.Path);
        var records = JournalFiles.Records(segments[1]);
        var next = JournalFiles.Records(segments[2])[0].Offset;
        Assert.Equal(records[^1].Offset + 1, next);
        var from = damaged == "the last record" ? records.Count - 1 : records.Count / 2;
        for (var i = from; i < records.Count; i++)
        {
            RecordDamage.FlipPayloadByte(dir.Path, 1, i);
        }

        var first = records[from].Offset;
        using var reopened = JournalLog.Open(dir.Path, s_trusting);

        // The reader that reaches the damage is told, at every read (it never skips it by itself).
        using (var reader = reopened.OpenReader(ReadStart.FromOffset(first)))
        {
            Assert.Equal(first, Assert.Throws<JournalCorruptionException>(() => reader.TryRead(out _)).ExpectedOffset);
            Assert.Throws<JournalCorruptionException>(() => reader.TryRead(out _));
        }

        // Past it as a consumer goes (told of a damaged record, it starts at the offset after it): on at the next
        // segment's first record. (A start at a damaged offset that an index entry points at lands on it, unchecked by
        // the seek: its reader is told of that one, and the consumer starts after it in turn.)
        var at = first;
        for (var told = 0; ; told++)
        {
            Assert.True(told <= records.Count, $"damaged {damaged}: still not past the damage after {told} starts");
            JournalReader reader;
            try
            {
                reader = reopened.OpenReader(ReadStart.FromOffset(at + 1));
            }
            catch (JournalCorruptionException e)
            {
                Assert.Fail($"damaged {damaged}: a start at offset {at + 1} was refused ({e.Message}); the next intact record is offset {next}, the next segment's first");
                return;
            }

            using (reader)
            {
                if (reader.NextOffset == next)
                {
                    ReadsOnFrom(reader, next);
                    break;
                }

                Assert.InRange(reader.NextOffset, at + 1, next - 1);
                at = Assert.Throws<JournalCorruptionException>(() => reader.TryRead(out _)).ExpectedOffset;
                Assert.Equal(reader.NextOffset, at);
            }
        }

        // A start at the time of a damaged record: the search passes over the rest of the segment to the next one.
        foreach (var offset in new[] { first, records[^1].Offset })
        {
            JournalReader reader;
            try
            {
                reader = reopened.OpenReader(ReadStart.FromTimestamp(T0 + (offset * 10)));
            }
            catch (JournalCorruptionException e)
            {
                Assert.Fail($"damaged {damaged}: a start at the time of offset {offset} was refused ({e.Message}); the first intact record at or after it is offset {next}, the next segment's first");
                return;
            }

            using (reader)
            {
                Assert.True(next == reader.NextOffset, $"damaged {damaged}: a start at the time of offset {offset} lands on offset {reader.NextOffset}, not on {next}");
                ReadsOnFrom(reader, next);
            }
        }
    }

    private static void ReadsOnFrom(JournalReader reader, long next)
    {
        for (var expected = next; expected < next + 3; expected++)
        {
            Assert.True(reader.TryRead(out var record));
            Assert.Equal(expected, record.Offset);
            Assert.True(record.Payload.SequenceEqual(AppendReadTests.PayloadFor(expected)));
        }
    }
}
