using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

public class RecoveryTests
{
    private static readonly JournalOptions s_options = AppendReadTests.Small;

    [Fact]
    public void Truncating_the_active_segment_at_every_byte_of_its_last_record_gives_the_documented_outcome()
    {
        using var original = new TempDirectory();
        const int Count = 40;
        using (var journal = JournalLog.Open(original.Path, s_options))
        {
            AppendReadTests.AppendRange(journal, Count);
        }

        var segmentName = Path.GetFileName(JournalFiles.Segments(original.Path)[^1]);
        var last = JournalFiles.Records(JournalFiles.Segments(original.Path)[^1])[^1];
        Assert.Equal(Count - 1, last.Offset);
        var stored = (last.Length + 7) & ~7;
        for (var cut = 0; cut <= stored; cut++)
        {
            using var copy = new TempDirectory();
            JournalFiles.CopyDirectory(original.Path, copy.Path);
            var path = Path.Combine(copy.Path, segmentName);
            using (var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite))
            {
                stream.SetLength(last.Position + cut);
            }

            using (var journal = JournalLog.Open(copy.Path, s_options))
            {
                var report = journal.Recovery;
                if (cut == 0 || cut >= last.Length)
                {
                    // Nothing of the record, or all of it (the cut fell in the padding): nothing to drop.
                    Assert.True(report.IsClean, $"cut {cut}: {report}");
                    Assert.Equal(cut == 0 ? Count - 1 : Count, journal.NextOffset);
                }
                else
                {
                    var dropped = Assert.Single(report.Dropped);
                    Assert.Equal(1, dropped.RecordCount);
                    Assert.Equal(last.Position, dropped.StartPosition);
                    Assert.InRange(dropped.EndPosition, last.Position + 1, last.Position + cut);
                    Assert.Equal(Count - 1, dropped.FirstOffset);
                    Assert.Equal(path, dropped.FilePath);
                    Assert.Equal(Count - 1, journal.NextOffset);
                }

                Assert.Equal(journal.NextOffset, AppendReadTests.ReadAllChecked(journal));
            }

            using (var journal = JournalLog.Open(copy.Path, s_options))
            {
                Assert.True(journal.Recovery.IsClean, $"second open after cut {cut}: {journal.Recovery}");
                var end = JournalFiles.Records(path) is { Count: > 0 } recs ? recs[^1].Position + ((recs[^1].Length + 7) & ~7) : JournalFiles.SegmentHeaderSize;
                Assert.True(JournalFiles.AllZeroFrom(path, end), "nothing but zeros after the tail");
                AppendReadTests.AppendRange(journal, 3);
                Assert.Equal(journal.NextOffset, AppendReadTests.ReadAllChecked(journal));
            }
        }
    }

    [Fact]
    public void Missing_or_damaged_index_files_are_rebuilt()
    {
        using var dir = new TempDirectory();
        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            AppendReadTests.AppendRange(journal, 3000);
            RetentionTests.SealAll(journal);
        }

        var indexes = Directory.GetFiles(dir.Path, "*.idx").Order(StringComparer.Ordinal).ToArray();
        Assert.True(indexes.Length >= 2);
        File.Delete(indexes[0]);
        JournalFiles.FlipBit(indexes[1], 40);
        foreach (var verify in new[] { false, true })
        {
            using var journal = JournalLog.Open(dir.Path, s_options with { VerifySealedSegmentsOnOpen = verify });
            Assert.Equal(verify ? 0 : 2, journal.Recovery.IndexesRebuilt);
            Assert.True(journal.Recovery.IsClean);
            for (long offset = 0; offset < 3000; offset += 101)
            {
                using var reader = journal.OpenReader(ReadStart.FromOffset(offset));
                Assert.True(reader.TryRead(out var r));
                Assert.Equal(offset, r.Offset);
            }
        }
    }

    [Fact]
    public void A_segment_file_whose_creation_never_finished_is_removed_and_reported()
    {
        using var dir = new TempDirectory();
        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            AppendReadTests.AppendRange(journal, 100);
        }

        var blank = Path.Combine(dir.Path, "00000000000000000100.seg");
        File.WriteAllBytes(blank, new byte[64 << 10]);
        File.WriteAllBytes(Path.Combine(dir.Path, "spare-123.prep"), new byte[100]);
        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            Assert.Contains(blank, journal.Recovery.RemovedFiles);
            Assert.Equal(100, journal.NextOffset);
            Assert.False(File.Exists(blank));
            Assert.False(File.Exists(Path.Combine(dir.Path, "spare-123.prep")), "a spare never adopted is deleted");
            AppendReadTests.AppendRange(journal, 10);
            Assert.Equal(110, AppendReadTests.ReadAllChecked(journal));
        }
    }

    [Fact]
    public void A_clean_reopen_reports_nothing_dropped_and_keeps_every_record()
    {
        using var dir = new TempDirectory();
        using (var journal = JournalLog.Open(dir.Path, s_options with { Durability = DurabilityPolicy.GroupCommit }))
        {
            AppendReadTests.AppendRange(journal, 2000);
            Assert.True(journal.WaitForDurable(1999, Eventually.DefaultTimeout));
        }

        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            Assert.True(journal.Recovery.IsClean, journal.Recovery.ToString());
            Assert.Equal(0, journal.Recovery.FirstOffset);
            Assert.Equal(2000, journal.Recovery.NextOffset);
            Assert.Equal(journal.Recovery.SegmentCount, journal.Recovery.SegmentsVerified);
            Assert.Equal(2000, AppendReadTests.ReadAllChecked(journal));
        }
    }

    /// <summary>
    /// Timestamps never decrease, across a reopen too: the time index and seek by time rely on it. When the last
    /// segment holds no record (a roll whose first record never reached the disk) or is sealed (the next segment's
    /// file was lost), the writer must still know the newest timestamp of the segments before it.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Timestamps_never_decrease_across_a_reopen_whose_last_segment_is_empty_or_sealed(bool emptyLast)
    {
        const long T0 = 1_700_000_000_000;
        using var dir = new TempDirectory();
        long count = 0;
        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            while (journal.SegmentCount < 3)
            {
                Assert.True(journal.TryAppend(default, default, AppendReadTests.PayloadFor(count), RecordFlags.None, T0 + count, out _));
                count++;
            }

            journal.Commit();
            RetentionTests.SealAll(journal);
        }

        var segments = JournalFiles.Segments(dir.Path);
        var last = segments[^1];
        var lastBase = long.Parse(Path.GetFileNameWithoutExtension(last), System.Globalization.CultureInfo.InvariantCulture);
        if (emptyLast)
        {
            // Its records never reached the disk: header only.
            using var stream = new FileStream(last, FileMode.Open, FileAccess.ReadWrite);
            stream.Position = JournalFiles.SegmentHeaderSize;
            stream.Write(new byte[stream.Length - JournalFiles.SegmentHeaderSize]);
        }
        else
        {
            File.Delete(last); // the roll's new file was lost; the segment before it is sealed
        }

        var newest = T0 + lastBase - 1;
        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            Assert.Equal(lastBase, journal.NextOffset);
            Assert.True(journal.TryAppend(default, default, "late"u8, RecordFlags.None, T0, out var offset)); // a clock that went back
            Assert.Equal(lastBase, offset);
            journal.Commit();
            using var reader = journal.OpenReader(ReadStart.FromOffset(offset));
            Assert.True(reader.TryRead(out var record));
            Assert.Equal(newest, record.Timestamp);

            using var byTime = journal.OpenReader(ReadStart.FromTimestamp(newest));
            Assert.Equal(lastBase - 1, byTime.NextOffset);
        }
    }
}
