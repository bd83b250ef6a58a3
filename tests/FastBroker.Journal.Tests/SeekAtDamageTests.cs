using System.Buffers.Binary;
using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

/// <summary>
/// Starts at and across damage: a start exactly at a damaged offset is told of it (with the run of damage it starts),
/// whether an index entry points at it or the seek walks to it across earlier damage; a reader learns a damaged run in
/// one pass; a seek passes over a zeroed length word among a sealed segment's records to the next record that checks.
/// </summary>
public class SeekAtDamageTests
{
    private static readonly JournalOptions s_trusting = AppendReadTests.Small with { VerifySealedSegmentsOnOpen = false };

    /// <summary>
    /// The target and the record before it damaged (CRC32C): a start at the target is told of it whether an index entry
    /// points at it or the seek walks to it across the first. Before, the walk passed over both with PastDamage and the
    /// reader started after them, silently.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_start_at_a_damaged_offset_after_damage_is_told_of_it_with_or_without_an_index_entry_there(bool indexEntry)
    {
        using var dir = new TempDirectory();
        var (segment, baseOffset, entries) = SealedSegments(dir.Path);
        var entry = entries[1];
        var target = indexEntry ? entry : entry + 2;
        Assert.True(indexEntry || !entries.Contains(target), $"offset {target} of the segment is an index entry");
        Assert.True(entries.First(e => e > entry) > target + 1, "the target and the record after it lie before the next index entry");
        RecordDamage.FlipPayloadByte(dir.Path, 1, target - 1);
        RecordDamage.FlipPayloadByte(dir.Path, 1, target);

        using var journal = JournalLog.Open(dir.Path, s_trusting);
        using (var reader = journal.OpenReader(ReadStart.FromOffset(baseOffset + target)))
        {
            Assert.True(reader.NextOffset == baseOffset + target, $"a start at damaged offset {baseOffset + target} (index entry: {indexEntry}) landed on {reader.NextOffset}, skipping it silently (Skipped {reader.Skipped})");
            Assert.Equal(0, reader.Skipped);
            var told = Assert.Throws<JournalCorruptionException>(() => reader.TryRead(out _));
            Assert.Equal(baseOffset + target, told.ExpectedOffset);
            Assert.Equal(baseOffset + target + 1, told.ResumeOffset);
            Assert.Equal(segment, told.FilePath);
            Assert.Equal(JournalFiles.Records(segment)[target].Position, told.Position);
            Assert.Throws<JournalCorruptionException>(() => reader.TryRead(out _)); // it stays before it
        }

        // The consumer goes on where it is told: the next offset reads.
        using (var reader = journal.OpenReader(ReadStart.FromOffset(baseOffset + target + 1)))
        {
            ReadsOnFrom(reader, baseOffset + target + 1);
        }
    }

    /// <summary>
    /// A long zeroed stretch of a sealed segment (thousands of records whose length words say nothing of where they
    /// lay): a reader that meets it learns the whole run in one pass (ResumeOffset: the next record that checks), is told
    /// the same at every later read without scanning again, and a start anywhere in it is told of its own offset with
    /// the same end; the consumer goes on at that end with one seek. The scanning is linear in the run (DamageScanBytes):
    /// the old per-offset way (told of one offset, start at the next) scanned the rest of the run at each of them.
    /// </summary>
    [Fact]
    public void A_reader_that_meets_a_damaged_run_learns_where_it_ends_in_one_pass_over_it()
    {
        const int Run = 4000;
        using var dir = new TempDirectory();
        using (var journal = JournalLog.Open(dir.Path, AppendReadTests.Small with { SegmentSize = 1 << 20 }))
        {
            for (long i = 0; journal.SegmentCount < 3; i++)
            {
                Assert.True(journal.TryAppend([], [], AppendReadTests.PayloadFor(i), RecordFlags.None, 1_700_000_000_000 + i, out _));
            }

            journal.Commit();
            RetentionTests.SealAll(journal);
        }

        var (_, first, from, to) = RecordDamage.ZeroRecords(dir.Path, 1, 100, Run);
        var resume = first + Run;
        var runBytes = to - from;

        using var reopened = JournalLog.Open(dir.Path, s_trusting with { SegmentSize = 1 << 20 });
        var scanned = reopened.DamageScanBytes;
        using (var reader = reopened.OpenReader(ReadStart.FromOffset(first)))
        {
            var told = Assert.Throws<JournalCorruptionException>(() => reader.TryRead(out _));
            Assert.Equal((first, resume), (told.ExpectedOffset, told.ResumeOffset));
            Assert.Contains($"offsets {first} to {resume - 1} do not read, the next record that does is offset {resume}", told.Message, StringComparison.Ordinal);
            var once = reopened.DamageScanBytes - scanned;
            Assert.InRange(once, runBytes, runBytes + 8);
            for (var i = 0; i < 3; i++)
            {
                Assert.Equal(resume, Assert.Throws<JournalCorruptionException>(() => reader.TryRead(out _)).ResumeOffset);
            }

            Assert.Equal(once, reopened.DamageScanBytes - scanned); // learned once: not again at every read
        }

        // A start in the middle of it: told of its own offset, with the same end.
        using (var reader = reopened.OpenReader(ReadStart.FromOffset(first + (Run / 2))))
        {
            Assert.Equal(first + (Run / 2), reader.NextOffset);
            var told = Assert.Throws<JournalCorruptionException>(() => reader.TryRead(out _));
            Assert.Equal((first + (Run / 2), resume), (told.ExpectedOffset, told.ResumeOffset));
        }

        // The consumer goes on where it is told, with one seek.
        using (var reader = reopened.OpenReader(ReadStart.FromOffset(resume)))
        {
            ReadsOnFrom(reader, resume);
        }

        // Linear: about twice the run (the first reader's pass, the middle start's seek and reader over its second half),
        // where a seek per offset would scan about Run / 2 times the run.
        var total = reopened.DamageScanBytes - scanned;
        Assert.True(total <= 3 * runBytes, $"meeting a damaged run of {Run} records ({runBytes} bytes) and going past it scanned {total} bytes of damage");
    }

    [Fact]
    public void A_zeroed_length_word_in_the_middle_of_a_sealed_segment_is_passed_over_by_a_seek()
    {
        using var dir = new TempDirectory();
        var (segment, baseOffset, entries) = SealedSegments(dir.Path);
        var records = JournalFiles.Records(segment);
        var zeroed = entries[1] + 1; // walked across from the entry before it
        Assert.True(zeroed < records.Count - 3 && !entries.Contains(zeroed + 1));
        using (var file = new FileStream(segment, FileMode.Open, FileAccess.ReadWrite))
        {
            file.Position = records[zeroed].Position;
            file.Write(new byte[4]);
            file.Flush(flushToDisk: true);
        }

        using var journal = JournalLog.Open(dir.Path, s_trusting);

        // A start at it: told (a zero length word where the segment says records continue is damage, not an end).
        using (var reader = journal.OpenReader(ReadStart.FromOffset(baseOffset + zeroed)))
        {
            Assert.Equal(baseOffset + zeroed, reader.NextOffset);
            var told = Assert.Throws<JournalCorruptionException>(() => reader.TryRead(out _));
            Assert.Equal(baseOffset + zeroed, told.ExpectedOffset);
            Assert.Equal(records[zeroed].Position, told.Position);
        }

        // A start past it: the seek passes over it to the record asked for.
        JournalReader past;
        try
        {
            past = journal.OpenReader(ReadStart.FromOffset(baseOffset + zeroed + 1));
        }
        catch (JournalCorruptionException e)
        {
            Assert.Fail($"a start at offset {baseOffset + zeroed + 1}, past a zeroed length word, was refused: {e.Message}");
            return;
        }

        using (past)
        {
            Assert.Equal(0, past.Skipped);
            ReadsOnFrom(past, baseOffset + zeroed + 1);
        }

        // And further on, from a later index entry's interval: unaffected.
        using (var reader = journal.OpenReader(ReadStart.FromOffset(baseOffset + records.Count - 1)))
        {
            Assert.True(reader.TryRead(out var record));
            Assert.Equal(baseOffset + records.Count - 1, record.Offset);
        }
    }

    /// <summary>A journal of at least three sealed segments; the second one's file, base offset and index entries (relative offsets).</summary>
    private static (string Segment, long BaseOffset, int[] Entries) SealedSegments(string path)
    {
        using (var journal = JournalLog.Open(path, AppendReadTests.Small))
        {
            for (long i = 0; journal.SegmentCount < 4; i++)
            {
                Assert.True(journal.TryAppend([], [], AppendReadTests.PayloadFor(i), RecordFlags.None, 1_700_000_000_000 + i, out var offset));
                Assert.Equal(i, offset);
            }

            journal.Commit();
            RetentionTests.SealAll(journal);
        }

        var segment = JournalFiles.Segments(path)[1];
        var baseOffset = JournalFiles.Records(segment)[0].Offset;
        var index = File.ReadAllBytes(Path.ChangeExtension(segment, ".idx"));
        var entries = new int[BinaryPrimitives.ReadInt32LittleEndian(index.AsSpan(12))];
        for (var i = 0; i < entries.Length; i++)
        {
            entries[i] = BinaryPrimitives.ReadInt32LittleEndian(index.AsSpan(32 + (i * 16)));
        }

        Assert.True(entries.Length >= 3, $"the segment has {entries.Length} index entries");
        return (segment, baseOffset, entries);
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
