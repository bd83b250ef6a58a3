using System.Buffers.Binary;
using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

/// <summary>
/// A zeroed length word among a sealed segment's records: a start at it is told of it, and a seek across it passes
/// over it to the next record that checks.
/// </summary>
public class SeekAtDamageTests
{
    private static readonly JournalOptions s_trusting = AppendReadTests.Small with { VerifySealedSegmentsOnOpen = false };

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
