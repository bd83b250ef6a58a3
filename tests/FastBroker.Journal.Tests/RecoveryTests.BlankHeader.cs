using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

// A segment header that is blank after a power loss: a lost tail (truncated, reported, counted by verify), or damage.
public partial class RecoveryTests
{
    /// <summary>
    /// A power loss with <see cref="DurabilityPolicy.None"/> (the broker's Written durability) after the writer filled
    /// a segment and rolled on, before the flusher synced or sealed it: its header page (synced with its first records)
    /// never reached the disk while the kernel wrote back other pages of it and of the segments after it. Nothing from
    /// that segment on was ever synced: a lost tail, truncated and reported, not corruption.
    /// </summary>
    [Theory]
    [InlineData("identity block", 64)]
    [InlineData("header page", 4096)]
    [InlineData("whole file", 64 << 10)]
    public void A_blank_header_never_synced_before_a_power_loss_is_a_lost_tail_truncated_and_reported(string what, int zeroed)
    {
        using var dir = new TempDirectory();
        WriteSealed(dir.Path, 3000);
        var segments = JournalFiles.Segments(dir.Path);
        Assert.True(segments.Length >= 4, $"{segments.Length} segments");
        var blank = segments[1];
        var blankBase = BaseOf(blank);
        var blankRecords = JournalFiles.Records(blank).Count;
        PowerLossFrom(segments, 1);
        ZeroRange(blank, 0, zeroed);
        var verdict = JournalInspector.Verify(dir.Path).ExitCode; // before open changes anything; checked after it

        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            Assert.Equal(2, verdict); // a damaged tail, which open truncates
            var report = journal.Recovery;
            Assert.Equal(blankBase, journal.NextOffset);
            Assert.Equal(blank, report.Dropped[0].FilePath);
            Assert.Equal(blankBase, report.Dropped[0].FirstOffset);
            Assert.Equal(zeroed <= JournalFiles.SegmentHeaderSize ? blankRecords : 0, report.Dropped[0].RecordCount); // the records after a lost header still count
            if (zeroed <= JournalFiles.SegmentHeaderSize)
            {
                Assert.Equal(3000 - blankBase, report.DroppedRecordCount); // every record lost is reported
            }

            Assert.Equal(segments[1..], report.Dropped.Select(d => d.FilePath));
            Assert.Equal(segments[1..], report.RemovedFiles);
            Assert.All(segments[1..], s => Assert.False(File.Exists(s), $"{what}: {s} removed"));
            Assert.Equal(blankBase, AppendReadTests.ReadAllChecked(journal));
            AppendReadTests.AppendRange(journal, 5);
        }

        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            Assert.True(journal.Recovery.IsClean, journal.Recovery.ToString());
            Assert.Equal(blankBase + 5, AppendReadTests.ReadAllChecked(journal));
        }
    }

    /// <summary>
    /// <c>journal verify</c> counts the records of a blank-header file that open removes as a lost tail as open reports
    /// them dropped (the valid records from byte 128 on, offsets from its name), in its segment line and its totals, and
    /// says what open does with it; every record it counts from that file on is one the open reports dropped.
    /// </summary>
    [Fact]
    public void Verify_counts_the_records_of_a_blank_header_lost_tail_as_open_reports_them_dropped()
    {
        using var dir = new TempDirectory();
        WriteSealed(dir.Path, 3000);
        var segments = JournalFiles.Segments(dir.Path);
        Assert.True(segments.Length >= 4, $"{segments.Length} segments");
        var blank = segments[1];
        var records = JournalFiles.Records(blank);
        PowerLossFrom(segments, 1);
        ZeroRange(blank, 0, 64); // the identity block only: every record after it is still there

        var verify = JournalInspector.Verify(dir.Path);
        using var journal = JournalLog.Open(dir.Path, s_options);
        var line = verify.Segments[1];
        Assert.Equal(2, verify.ExitCode);
        Assert.Equal(records.Count, line.RecordCount);
        Assert.Equal(journal.Recovery.Dropped[0].RecordCount, line.RecordCount);
        Assert.Equal(records[^1].Position + ((records[^1].Length + 7) & ~7) - JournalFiles.SegmentHeaderSize, line.Bytes);
        Assert.Contains($"lost tail (open removes this file and every later one, its {records.Count} record(s) reported dropped)", line.Problem, StringComparison.Ordinal);
        Assert.Equal(3000, verify.RecordCount);
        Assert.Equal(journal.Recovery.DroppedRecordCount, verify.Segments.Skip(1).Sum(s => (long)s.RecordCount));
    }

    /// <summary>
    /// When recovery removes every segment file (retention had deleted the segments before a blank one), the journal
    /// continues at the first removed file's base offset: the offsets below it were given out before, and consumers
    /// hold positions in them, so starting again at <see cref="JournalOptions.InitialOffset"/> would give them again.
    /// </summary>
    [Theory]
    [InlineData("blank header never synced, later segments after it")]
    [InlineData("all-zero last file alone")]
    public void A_journal_whose_every_segment_file_recovery_removes_continues_at_the_first_removed_offset(string what)
    {
        using var dir = new TempDirectory();
        WriteSealed(dir.Path, 3000);
        var segments = JournalFiles.Segments(dir.Path);
        Assert.True(segments.Length >= 4, $"{segments.Length} segments");
        var first = what.StartsWith("blank header", StringComparison.Ordinal) ? 1 : segments.Length - 1;
        foreach (var s in segments[..first])
        {
            File.Delete(s); // retention, before the power loss
            File.Delete(Path.ChangeExtension(s, ".idx"));
        }

        var blankBase = BaseOf(segments[first]);
        PowerLossFrom(segments, first);
        ZeroRange(segments[first], 0, first == 1 ? JournalFiles.SegmentHeaderSize : 64 << 10);

        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            Assert.Equal(segments[first..], journal.Recovery.RemovedFiles);
            Assert.Equal(blankBase, journal.NextOffset);
            Assert.Equal(blankBase, journal.FirstOffset);
            AppendReadTests.AppendRange(journal, 5);
            Assert.Equal(blankBase + 5, AppendReadTests.ReadAllChecked(journal, blankBase));
        }

        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            Assert.True(journal.Recovery.IsClean, journal.Recovery.ToString());
            Assert.Equal(blankBase, journal.FirstOffset);
            Assert.Equal(blankBase + 5, journal.NextOffset);
        }
    }

    /// <summary>
    /// A blank identity block where something shows the header had reached the disk is damage, refused as before: the
    /// segment's own seal trailer (written after its data and header were synced), or a sealed segment after it (the
    /// flusher syncs segments in offset order, so that one's records were synced after this header).
    /// </summary>
    [Theory]
    [InlineData("its own seal trailer")]
    [InlineData("a sealed segment after it")]
    public void A_blank_header_in_a_segment_known_to_have_reached_the_disk_is_refused_as_corruption(string evidence)
    {
        using var dir = new TempDirectory();
        WriteSealed(dir.Path, 3000);
        var segments = JournalFiles.Segments(dir.Path);
        Assert.True(segments.Length >= 4, $"{segments.Length} segments");
        var blank = segments[1];
        if (evidence == "its own seal trailer")
        {
            PowerLossFrom(segments, 2);
            ZeroRange(blank, 0, 64);
        }
        else
        {
            PowerLossFrom(segments, 3); // segments[2] keeps its seal
            ZeroRange(blank, 0, JournalFiles.SegmentHeaderSize);
            File.Delete(Path.ChangeExtension(blank, ".idx"));
        }

        Assert.Equal(1, JournalInspector.Verify(dir.Path).ExitCode);
        for (var attempt = 0; attempt < 2; attempt++)
        {
            var e = Assert.Throws<JournalCorruptionException>(() => JournalLog.Open(dir.Path, s_options));
            Assert.Equal(blank, e.FilePath);
            Assert.Equal(0, e.Position);
            Assert.All(segments, s => Assert.True(File.Exists(s), $"refusing removed {s}"));
        }
    }
}
