using System.Buffers.Binary;
using FastBroker.Journal.Internal;
using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

/// <summary>
/// A sealed segment whose bytes change on disk after a clean close (bit rot, a bad copy), opened with
/// <see cref="JournalOptions.VerifySealedSegmentsOnOpen"/> off (the broker's --trust-sealed-segments, a promoted standby):
/// the open trusts the seal, so what reads the segment must not hand a damaged record on as a good one.
/// </summary>
public class SealTrustTests
{
    private static readonly JournalOptions s_trusting = AppendReadTests.Small with { VerifySealedSegmentsOnOpen = false };

    private static TempDirectory ClosedJournal(int count = 3000)
    {
        var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, AppendReadTests.Small);
        AppendReadTests.AppendRange(journal, count);
        RetentionTests.SealAll(journal);
        return dir;
    }

    [Fact]
    public void A_default_reader_refuses_a_damaged_record_of_a_trusted_sealed_segment_naming_segment_and_offset()
    {
        using var dir = ClosedJournal();
        var segment = JournalFiles.Segments(dir.Path)[1];
        var victim = JournalFiles.Records(segment)[5];
        JournalFiles.FlipBit(segment, victim.Position + victim.Length - 2, bit: 4); // a payload byte

        using var journal = JournalLog.Open(dir.Path, s_trusting);
        Assert.True(journal.Recovery.IsClean); // the seal was trusted: the open did not look
        using var reader = journal.OpenReader(ReadStart.Beginning);
        long read = 0;
        var e = Assert.Throws<JournalCorruptionException>(() =>
        {
            while (reader.TryRead(out var record))
            {
                Assert.True(record.Payload.SequenceEqual(AppendReadTests.PayloadFor(record.Offset)), $"offset {record.Offset} was returned damaged");
                read++;
            }
        });
        Assert.Equal(victim.Offset, read);
        Assert.Equal(segment, e.FilePath);
        Assert.Equal(victim.Position, e.Position);
        Assert.Equal(victim.Offset, e.ExpectedOffset);
        Assert.Equal(JournalErrorCode.Corruption, e.ErrorCode);
        Assert.Contains("CRC32C mismatch", e.Message, StringComparison.Ordinal);
        Assert.Contains(Path.GetFileName(segment), e.Message, StringComparison.Ordinal);
        Assert.Contains($"offset {victim.Offset}", e.Message, StringComparison.Ordinal);

        // It stays there: never skipped silently.
        Assert.Equal(victim.Offset, reader.NextOffset);
        Assert.Throws<JournalCorruptionException>(() => reader.TryRead(out _));
    }

    [Fact]
    public void A_damaged_length_word_in_a_trusted_sealed_segment_is_reported_as_damage_not_skipped_or_thrown_past()
    {
        using var dir = ClosedJournal();
        var segment = JournalFiles.Segments(dir.Path)[1];
        var victim = JournalFiles.Records(segment)[5];
        JournalFiles.FlipBit(segment, victim.Position + 2, bit: 6); // length += 256 KiB: past the segment

        using var journal = JournalLog.Open(dir.Path, s_trusting);
        using var reader = journal.OpenReader(ReadStart.Beginning);
        var e = Assert.Throws<JournalCorruptionException>(() =>
        {
            while (reader.TryRead(out _))
            {
            }
        });
        Assert.Equal(victim.Position, e.Position);
        Assert.Equal(victim.Offset, e.ExpectedOffset);
        Assert.Contains("bad record length", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_run_stops_before_a_damaged_record_and_the_next_run_refuses_it()
    {
        using var dir = ClosedJournal();
        var segment = JournalFiles.Segments(dir.Path)[1];
        var records = JournalFiles.Records(segment);
        var victim = records[5];
        JournalFiles.FlipBit(segment, victim.Position + 40);

        using var journal = JournalLog.Open(dir.Path, s_trusting);
        using var reader = journal.OpenReader(ReadStart.FromOffset(records[0].Offset), pinRetention: true);
        Assert.True(reader.TryReadRun(1 << 20, out var run));
        Assert.Equal(records[0].Offset, run.FirstOffset);
        Assert.Equal(5, run.RecordCount); // the good ones before it, not the damaged one
        var e = Assert.Throws<JournalCorruptionException>(() => reader.TryReadRun(1 << 20, out _));
        Assert.Equal(victim.Position, e.Position);
        Assert.Equal(victim.Offset, reader.NextOffset);
    }

    [Fact]
    public void A_seek_through_a_damaged_record_lands_on_the_record_asked_for_and_a_start_at_it_refuses()
    {
        using var dir = ClosedJournal();
        var segment = JournalFiles.Segments(dir.Path)[1];
        var records = JournalFiles.Records(segment);
        JournalFiles.FlipBit(segment, records[1].Position + 1, bit: 2); // the length of a record an offset seek passes over

        using var journal = JournalLog.Open(dir.Path, s_trusting);

        // Past it: the damaged length word leads nowhere, so the seek finds the next record whose length, offset and
        // CRC32C check, the one asked for, never another.
        using (var past = journal.OpenReader(ReadStart.FromOffset(records[2].Offset)))
        {
            Assert.Equal(records[2].Offset, past.NextOffset);
            for (var i = 2; i < records.Count; i++)
            {
                Assert.True(past.TryRead(out var record));
                Assert.Equal(records[i].Offset, record.Offset);
            }
        }

        using var at = journal.OpenReader(ReadStart.FromOffset(records[1].Offset));
        var e = Assert.Throws<JournalCorruptionException>(() => at.TryRead(out _));
        Assert.Equal(records[1].Position, e.Position);
        Assert.Equal(records[1].Offset, e.ExpectedOffset);
    }

    [Fact]
    public void A_damaged_index_file_is_rebuilt_and_seeks_land_on_the_record_asked_for()
    {
        using var dir = ClosedJournal();
        var segment = JournalFiles.Segments(dir.Path)[1];
        var index = IndexFile.PathFor(segment);
        JournalFiles.FlipBit(index, 32 + 16 + 4); // the second entry's position

        using var journal = JournalLog.Open(dir.Path, s_trusting);
        Assert.Equal(1, journal.Recovery.IndexesRebuilt);
        foreach (var (_, _, offset) in JournalFiles.Records(segment))
        {
            using var reader = journal.OpenReader(ReadStart.FromOffset(offset));
            Assert.True(reader.TryRead(out var record));
            Assert.Equal(offset, record.Offset);
        }

        Assert.Equal(3000, AppendReadTests.ReadAllChecked(journal));
    }

    [Fact]
    public void An_index_file_of_another_version_is_not_used()
    {
        using var dir = ClosedJournal();
        var segment = JournalFiles.Segments(dir.Path)[1];
        var index = IndexFile.PathFor(segment);
        var bytes = File.ReadAllBytes(index);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), 2);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(bytes.Length - 4), Crc32C.Compute(bytes.AsSpan(0, bytes.Length - 4)));
        File.WriteAllBytes(index, bytes);

        using var journal = JournalLog.Open(dir.Path, s_trusting);
        Assert.Equal(1, journal.Recovery.IndexesRebuilt);
        Assert.Equal(3000, AppendReadTests.ReadAllChecked(journal));
    }

    [Fact]
    public void A_damaged_seal_trailer_makes_the_segment_scanned_and_every_record_reads_once()
    {
        using var dir = ClosedJournal();
        var segment = JournalFiles.Segments(dir.Path)[1];
        JournalFiles.FlipBit(segment, 68); // the seal's record count: its CRC fails, the segment looks unsealed

        using var journal = JournalLog.Open(dir.Path, s_trusting);
        Assert.Empty(journal.Recovery.Dropped);
        Assert.Equal(3000, journal.NextOffset);
        Assert.Equal(3000, AppendReadTests.ReadAllChecked(journal));
        using var reader = journal.OpenReader(ReadStart.Beginning);
        long expected = 0;
        while (reader.TryRead(out var record))
        {
            Assert.Equal(expected++, record.Offset);
        }

        Assert.Equal(3000, expected);
    }

    [Fact]
    public void Verify_and_dump_report_a_damaged_record_of_a_sealed_segment()
    {
        using var dir = ClosedJournal();
        var segment = JournalFiles.Segments(dir.Path)[1];
        var victim = JournalFiles.Records(segment)[5];
        JournalFiles.FlipBit(segment, victim.Position + victim.Length - 2, bit: 4);

        var report = JournalInspector.Verify(dir.Path);
        Assert.Equal(1, report.ExitCode);
        var bad = report.Segments.First(s => s.Problem is not null);
        Assert.True(segment == bad.FilePath, string.Join("\n", report.Segments.Select(s => $"{s.FilePath}: {s.Problem}")));
        Assert.Contains("CRC32C", bad.Problem, StringComparison.Ordinal);

        var offsets = new List<long>();
        var printed = JournalInspector.Dump(dir.Path, null, null, long.MaxValue, r => offsets.Add(r.Offset), out var problem);
        Assert.Equal(victim.Offset, printed);
        Assert.Equal(victim.Offset, offsets.Count);
        Assert.NotNull(problem);
        Assert.Contains(Path.GetFileName(segment), problem, StringComparison.Ordinal);
        Assert.Contains("CRC32C", problem, StringComparison.Ordinal);
    }
}
