using FastBroker.Journal.Internal;
using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

/// <summary>
/// Each segment's verified watermark: a checking reader computes a record's CRC32C only when this process has not
/// written or checked it yet (a sealed segment the open trusted, until its first reader), never for fresh records.
/// </summary>
public class VerifiedWatermarkTests
{
    private static readonly JournalOptions s_trusting = AppendReadTests.Small with { VerifySealedSegmentsOnOpen = false };

    /// <summary>A closed journal of <paramref name="count"/> records and how many of them are in sealed segments.</summary>
    private static (TempDirectory Dir, long Sealed) ClosedJournal(int count = 3000)
    {
        var dir = new TempDirectory();
        using (var journal = JournalLog.Open(dir.Path, AppendReadTests.Small))
        {
            AppendReadTests.AppendRange(journal, count);
            RetentionTests.SealAll(journal);
        }

        long sealedRecords = 0;
        foreach (var segment in JournalFiles.Segments(dir.Path))
        {
            var header = new byte[SegmentHeader.Size];
            using (var file = File.OpenRead(segment))
            {
                file.ReadExactly(header);
            }

            if (SegmentHeader.TryReadSeal(header, out var records, out _, out _))
            {
                sealedRecords += records;
            }
        }

        Assert.True(sealedRecords > count / 2, $"{sealedRecords} of {count} records in sealed segments");
        return (dir, sealedRecords);
    }

    private static long ReadAll(JournalLog journal, long from = 0)
    {
        using var reader = journal.OpenReader(ReadStart.FromOffset(from));
        var expected = reader.NextOffset;
        while (reader.TryRead(out var record))
        {
            Assert.Equal(expected, record.Offset);
            Assert.True(record.Payload.SequenceEqual(AppendReadTests.PayloadFor(expected)), $"payload of offset {expected}");
            expected++;
        }

        return expected;
    }

    private static long ReadAllRuns(JournalLog journal)
    {
        using var reader = journal.OpenReader(ReadStart.Beginning);
        long records = 0;
        while (reader.TryReadRun(4096, out var run))
        {
            Assert.Equal(records, run.FirstOffset);
            records += run.RecordCount;
        }

        return records;
    }

    [Fact]
    public void Records_appended_by_this_process_are_read_without_a_crc()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, AppendReadTests.Small);
        AppendReadTests.AppendRange(journal, 3000);
        Assert.True(journal.SegmentCount > 3, "small segments roll");
        RetentionTests.SealAll(journal);

        Assert.Equal(3000, ReadAll(journal));
        Assert.Equal(3000, ReadAllRuns(journal));
        Assert.Equal(3000, ReadAll(journal, from: 2345)); // a seek passes over records too
        Assert.True(journal.CrcChecks == 0, $"{journal.CrcChecks} records CRC-checked on reading 3000 records this process appended");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_trusted_sealed_segment_is_crc_checked_once_by_its_first_reader_and_a_verified_one_never(bool verifyOnOpen)
    {
        var (dir, sealedRecords) = ClosedJournal();
        using (dir)
        {
            using var journal = JournalLog.Open(dir.Path, AppendReadTests.Small with { VerifySealedSegmentsOnOpen = verifyOnOpen });
            AppendReadTests.AppendRange(journal, 100); // fresh records after them

            Assert.Equal(3100, ReadAll(journal));
            var first = journal.CrcChecks;
            Assert.Equal(verifyOnOpen ? 0 : sealedRecords, first);

            Assert.Equal(3100, ReadAll(journal));
            Assert.Equal(3100, ReadAllRuns(journal));
            Assert.True(journal.CrcChecks == first, $"the second reader CRC-checked {journal.CrcChecks - first} records the first had checked");
        }
    }

    [Fact]
    public void A_trusted_sealed_segment_read_in_runs_is_crc_checked_once()
    {
        var (dir, sealedRecords) = ClosedJournal();
        using (dir)
        {
            using var journal = JournalLog.Open(dir.Path, s_trusting);
            Assert.Equal(3000, ReadAllRuns(journal));
            Assert.Equal(sealedRecords, journal.CrcChecks);
            Assert.Equal(3000, ReadAll(journal));
            Assert.Equal(sealedRecords, journal.CrcChecks);
        }
    }

    [Fact]
    public void A_reader_that_starts_inside_a_trusted_segment_has_its_seek_check_the_records_before_it_once()
    {
        var (dir, _) = ClosedJournal();
        using (dir)
        {
            using var journal = JournalLog.Open(dir.Path, s_trusting);
            var segment = JournalFiles.Segments(dir.Path)[1];
            var records = JournalFiles.Records(segment);
            var middle = records[records.Count / 2].Offset;
            var last = records[^1].Offset;

            // From the middle: the seek checks the records from the watermark (the segment's start) up to the middle and
            // moves the watermark there, the reader checks on and moves it with it: each record of the segment once.
            using (var reader = journal.OpenReader(ReadStart.FromOffset(middle)))
            {
                while (reader.NextOffset <= last && reader.TryRead(out _))
                {
                }
            }

            Assert.Equal(records.Count, journal.CrcChecks);

            // Now the whole segment is below its watermark: a reader from its start, or from anywhere in it, checks nothing.
            foreach (var start in new[] { records[0].Offset, middle, records[records.Count / 4].Offset })
            {
                using var reader = journal.OpenReader(ReadStart.FromOffset(start));
                while (reader.NextOffset <= last && reader.TryRead(out _))
                {
                }
            }

            Assert.Equal(records.Count, journal.CrcChecks);
        }
    }

    [Fact]
    public void Damage_below_the_watermark_is_not_checked_again_on_read_but_verify_reports_it()
    {
        var (dir, _) = ClosedJournal();
        using (dir)
        {
            var segment = JournalFiles.Segments(dir.Path)[1];
            var victim = JournalFiles.Records(segment)[5];
            using (var journal = JournalLog.Open(dir.Path, s_trusting))
            {
                Assert.Equal(3000, ReadAll(journal)); // the first reader checks the segment: good then
                JournalFiles.FlipBit(segment, victim.Position + victim.Length - 2, bit: 4); // the shared mapping sees it
                using var reader = journal.OpenReader(ReadStart.FromOffset(victim.Offset));
                Assert.True(reader.TryRead(out var record)); // known good in this process: read by its length alone
                Assert.Equal(victim.Offset, record.Offset);
                Assert.False(record.VerifyChecksum());
            }

            var report = JournalInspector.Verify(dir.Path);
            Assert.Equal(1, report.ExitCode);
            Assert.Contains(report.Segments, s => s.FilePath == segment && s.Problem is not null && s.Problem.Contains("CRC32C", StringComparison.Ordinal));

            // And the next trusting open's first reader refuses it.
            using var reopened = JournalLog.Open(dir.Path, s_trusting);
            var e = Assert.Throws<JournalCorruptionException>(() => ReadAll(reopened));
            Assert.Equal(victim.Position, e.Position);
        }
    }
}
