using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

public partial class RecoveryTests
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
    public void A_bad_checksum_in_the_middle_record_of_a_batch_drops_it_and_the_rest_and_no_lookup_goes_past_the_cut()
    {
        using var dir = new TempDirectory();
        const long T0 = 1_700_000_000_000;
        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            for (long i = 0; i < 10; i++)
            {
                Assert.True(journal.TryAppend(default, default, AppendReadTests.PayloadFor(i), RecordFlags.None, T0 + i, out _));
            }

            var size = 0;
            for (long i = 10; i < 13; i++)
            {
                size += JournalLog.StoredSize(0, 0, AppendReadTests.PayloadFor(i).Length);
            }

            Assert.True(journal.TryBeginBatch(size, out var batch));
            for (long i = 10; i < 13; i++)
            {
                batch.Append(AppendReadTests.PayloadFor(i));
            }

            batch.Complete();
            journal.Commit();
        }

        var path = JournalFiles.Segments(dir.Path)[^1];
        var records = JournalFiles.Records(path);
        var middle = records.Single(r => r.Offset == 11);
        var last = records.Single(r => r.Offset == 12);
        JournalFiles.FlipBit(path, middle.Position + middle.Length - 1, bit: 4); // payload: only the CRC can tell
        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            var dropped = Assert.Single(journal.Recovery.Dropped);
            Assert.Equal(middle.Position, dropped.StartPosition);
            Assert.Equal(last.Position + last.Length, dropped.EndPosition);
            Assert.Equal(11, dropped.FirstOffset);
            Assert.Equal(2, dropped.RecordCount);
            Assert.Equal(2, journal.Recovery.DroppedRecordCount);
            Assert.Equal(11, journal.NextOffset);
            Assert.True(JournalFiles.AllZeroFrom(path, middle.Position), "the dropped records are zeroed");
            Assert.Equal(11, AppendReadTests.ReadAllChecked(journal));
            foreach (var start in new[] { ReadStart.FromOffset(11), ReadStart.FromOffset(12), ReadStart.FromOffset(13), ReadStart.End, ReadStart.FromTimestamp(long.MaxValue) })
            {
                using var reader = journal.OpenReader(start);
                Assert.Equal(11, reader.NextOffset);
                Assert.False(reader.TryRead(out _));
            }

            using (var byTime = journal.OpenReader(ReadStart.FromTimestamp(T0 + 9)))
            {
                Assert.Equal(9, byTime.NextOffset);
            }

            AppendReadTests.AppendRange(journal, 3);
            journal.Commit();
            Assert.Equal(14, AppendReadTests.ReadAllChecked(journal));
        }

        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            Assert.True(journal.Recovery.IsClean, journal.Recovery.ToString());
            Assert.Equal(14, AppendReadTests.ReadAllChecked(journal));
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_record_that_exactly_fills_a_segment_stays_in_it_and_the_next_one_starts_the_next_segment(bool viaBatch)
    {
        using var dir = new TempDirectory();
        const int Records = 4;
        var payload = new byte[((s_options.SegmentSize - JournalFiles.SegmentHeaderSize) / Records) - 32]; // 4 fill it to the byte
        Assert.Equal(0, payload.Length % 8);
        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            if (viaBatch)
            {
                // One record, then a batch reserving exactly the rest of the segment.
                Assert.True(journal.TryAppend(payload, out _));
                Assert.True(journal.TryBeginBatch((Records - 1) * JournalLog.StoredSize(0, 0, payload.Length), out var batch));
                for (var i = 1; i < Records; i++)
                {
                    batch.Append(payload);
                }

                batch.Complete();
            }
            else
            {
                for (var i = 0; i < Records; i++)
                {
                    Assert.True(journal.TryAppend(payload, out _));
                }
            }

            journal.Commit();
            Assert.Equal(1, journal.SegmentCount);
        }

        var first = JournalFiles.Segments(dir.Path)[0];
        Assert.Equal(s_options.SegmentSize, JournalFiles.Records(first)[^1].Position + 32 + payload.Length);
        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            // A full, unsealed last segment: intact, and the writer continues in a new one.
            Assert.True(journal.Recovery.IsClean, journal.Recovery.ToString());
            Assert.Equal(Records, journal.NextOffset);
            Assert.True(journal.TryAppend(AppendReadTests.PayloadFor(Records), out var offset));
            Assert.Equal(Records, offset);
            journal.Commit();
            Assert.Equal(2, journal.SegmentCount);
            Assert.Equal(Records, JournalFiles.Records(JournalFiles.Segments(dir.Path)[1])[0].Offset);
            foreach (var start in new long[] { Records - 1, Records })
            {
                using var reader = journal.OpenReader(ReadStart.FromOffset(start));
                for (var expected = start; expected <= Records; expected++)
                {
                    Assert.True(reader.TryRead(out var record));
                    Assert.Equal(expected, record.Offset);
                    Assert.True(record.VerifyChecksum());
                }

                Assert.False(reader.TryRead(out _));
            }
        }

        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            Assert.True(journal.Recovery.IsClean, journal.Recovery.ToString());
            Assert.Equal(Records + 1, journal.NextOffset);
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
    public void Index_files_left_empty_zeroed_garbled_or_of_another_segment_are_rebuilt_and_reads_by_offset_stay_right()
    {
        // An index file is written (temporary file, rename) without an fsync: after a power loss it may be empty, or
        // keep its length with zeros (a file system that wrote the size and not the data); a bad write or copy can
        // leave anything. Each must be found out at open, never used to look up a record.
        using var dir = new TempDirectory();
        const int Records = 6000;
        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            AppendReadTests.AppendRange(journal, Records);
            RetentionTests.SealAll(journal);
        }

        var indexes = Directory.GetFiles(dir.Path, "*.idx").Order(StringComparer.Ordinal).ToArray();
        Assert.True(indexes.Length >= 5, $"{indexes.Length} sealed segments");
        var length = new FileInfo(indexes[1]).Length;
        File.WriteAllBytes(indexes[0], []);
        File.WriteAllBytes(indexes[1], new byte[length]);
        var garbage = new byte[length];
        new Random(7).NextBytes(garbage);
        File.WriteAllBytes(indexes[2], garbage);
        File.Copy(indexes[4], indexes[3], overwrite: true); // a whole, checksummed index, of the next segment
        foreach (var verify in new[] { false, true })
        {
            using (var journal = JournalLog.Open(dir.Path, s_options with { VerifySealedSegmentsOnOpen = verify }))
            {
                Assert.True(journal.Recovery.IsClean, journal.Recovery.ToString());
                for (long offset = 0; offset < Records; offset += 37)
                {
                    using var reader = journal.OpenReader(ReadStart.FromOffset(offset), verifyChecksums: true);
                    Assert.True(reader.TryRead(out var r), $"offset {offset}");
                    Assert.Equal(offset, r.Offset);
                    Assert.True(r.Payload.SequenceEqual(AppendReadTests.PayloadFor(offset)), $"payload of offset {offset}");
                }

                Assert.Equal(Records, AppendReadTests.ReadAllChecked(journal));
                Assert.Equal(verify ? 0 : 4, journal.Recovery.IndexesRebuilt); // the first open rewrote them all
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

    private static void WriteSealed(string path, int records)
    {
        using var journal = JournalLog.Open(path, s_options);
        AppendReadTests.AppendRange(journal, records);
        RetentionTests.SealAll(journal);
    }

    private static long BaseOf(string segment) => long.Parse(Path.GetFileNameWithoutExtension(segment), System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The segments from <paramref name="first"/> on were never sealed: no seal trailer, no index file.</summary>
    private static void PowerLossFrom(string[] segments, int first)
    {
        foreach (var s in segments[first..])
        {
            ZeroRange(s, 64, 64);
            File.Delete(Path.ChangeExtension(s, ".idx"));
        }
    }

    private static void ZeroRange(string path, long position, int length)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        stream.Position = position;
        stream.Write(new byte[length]);
    }
}
