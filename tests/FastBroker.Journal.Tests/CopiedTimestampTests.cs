using System.Buffers.Binary;
using FastBroker.Journal.Internal;
using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

/// <summary>
/// Records a standby copies (<see cref="JournalLog.TryAppendRecords"/>) keep their timestamps, which may be older than the
/// one before them: the seal, retention by age, the time index and a start at a time must hold for such a journal too,
/// while it is written and after it is reopened.
/// </summary>
public class CopiedTimestampTests
{
    private const long T0 = 1_700_000_000_000;
    private const int PayloadLength = 200; // 232 bytes stored: an index entry (512-byte interval) every third record

    /// <summary>
    /// The live path: a segment whose newest record is not its last is rolled and sealed by the flusher while the journal
    /// is open; its seal (and its in-memory last timestamp, which retention reads) must be the newest, not the last.
    /// </summary>
    [Fact]
    public void A_segment_rolled_after_copied_records_that_go_back_in_time_is_sealed_with_its_newest_timestamp()
    {
        using var dir = new TempDirectory();
        var options = AppendReadTests.Small with { RetentionMaxAge = TimeSpan.FromSeconds(100), RetentionCheckInterval = TimeSpan.FromHours(1) };
        var now = DateTimeOffset.FromUnixTimeMilliseconds(T0 + 250_000); // retention by age deletes what is older than T0 + 150 s
        using (var standby = JournalLog.Open(dir.Path, options))
        {
            Copy(standby, T0 + 200_000);
            while (standby.SegmentCount < 2)
            {
                Copy(standby, T0 + 50_000);
            }

            standby.Commit();
            var first = JournalFiles.Segments(dir.Path)[0];
            Eventually.True(() => InspectorFromTimeTests.SealOf(first) is not null, "the flusher seals the rolled segment");
            var seal = InspectorFromTimeTests.SealOf(first)!.Value;
            Assert.True(seal >= T0 + 200_000, $"{Path.GetFileName(first)} holds a record stamped 200 s after T0 but is sealed with {seal - T0} ms after T0");
            Assert.Equal(0, standby.ApplyRetention(now));
        }

        var visited = new List<long>();
        JournalInspector.Dump(dir.Path, null, T0 + 100_000, long.MaxValue, r => visited.Add(r.Offset), out var problem);
        Assert.Null(problem);
        Assert.Equal([0L], visited);

        using var reopened = JournalLog.Open(dir.Path, options);
        Assert.Equal(0, reopened.ApplyRetention(now));
        Assert.Equal(0, reopened.FirstOffset);
    }

    public static TheoryData<string> Modes => ["live", "reopened", "reopened, index files"];

    /// <summary>
    /// A start at a time is the first record in log order stamped at or after it, also where an older record follows a
    /// newer one: within a segment (between index entries and on one) and across segments, open or reopened (the index
    /// rebuilt by the open's scan, or read from the index files the seal wrote).
    /// </summary>
    [Theory]
    [MemberData(nameof(Modes))]
    public void A_reader_from_a_time_starts_at_the_first_record_at_or_after_it_in_log_order_when_copied_timestamps_go_back(string mode)
    {
        using var dir = new TempDirectory();
        var options = AppendReadTests.Small with { VerifySealedSegmentsOnOpen = mode != "reopened, index files" };
        var journal = JournalLog.Open(dir.Path, options);
        try
        {
            WriteOutOfOrder(journal, dir.Path);
            if (mode != "live")
            {
                journal.Dispose();
                journal = JournalLog.Open(dir.Path, options);
            }

            var all = new List<(long Offset, long Timestamp)>();
            JournalInspector.Dump(dir.Path, null, null, long.MaxValue, r => all.Add((r.Offset, r.Timestamp)), out var problem);
            Assert.Null(problem);
            Assert.Equal(journal.DurableOffset, all.Count);
            foreach (var t in new[] { T0, T0 + 10, T0 + 11, T0 + 25, T0 + 35, T0 + 100, T0 + 300, T0 + 301, T0 + 400, T0 + 401 })
            {
                var expected = all.FirstOrDefault(r => r.Timestamp >= t, (all.Count, 0)).Offset;
                using var reader = journal.OpenReader(ReadStart.FromTimestamp(t));
                Assert.True(expected == reader.NextOffset, $"{mode}: from {t - T0} ms after T0 the reader starts at offset {reader.NextOffset}; expected {expected}, the first record stamped at or after it ({all.Count} records)");
                if (expected < all.Count)
                {
                    Assert.True(reader.TryRead(out var record));
                    Assert.Equal(expected, record.Offset);
                }
            }
        }
        finally
        {
            journal.Dispose();
        }
    }

    /// <summary>
    /// The index file a seal writes for a segment holding copied records out of time order is valid (its entries never
    /// decrease), so an open reads it rather than rebuilding (and rewriting) it every time.
    /// </summary>
    [Fact]
    public void The_index_file_of_a_segment_holding_copied_records_out_of_time_order_is_read_not_rebuilt_at_open()
    {
        using var dir = new TempDirectory();
        var options = AppendReadTests.Small with { VerifySealedSegmentsOnOpen = false };
        using (var journal = JournalLog.Open(dir.Path, options))
        {
            WriteOutOfOrder(journal, dir.Path);
        }

        using var reopened = JournalLog.Open(dir.Path, options);
        Assert.True(reopened.Recovery.IndexesRebuilt == 0, $"the open rebuilt {reopened.Recovery.IndexesRebuilt} index(es) of sealed segments whose index files the seal wrote: {reopened.Recovery}");
    }

    /// <summary>
    /// A seal an older version wrote can understate its segment's newest timestamp; an open that scans the sealed segment
    /// (<see cref="JournalOptions.VerifySealedSegmentsOnOpen"/>) takes the newest of the seal's and its records', so
    /// retention by age and a start at a time do not pass over the newer record.
    /// </summary>
    [Fact]
    public void An_open_that_verifies_a_segment_whose_seal_understates_its_newest_timestamp_uses_the_newest()
    {
        using var dir = new TempDirectory();
        var options = AppendReadTests.Small with { RetentionMaxAge = TimeSpan.FromSeconds(100), RetentionCheckInterval = TimeSpan.FromHours(1) };
        using (var standby = JournalLog.Open(dir.Path, options))
        {
            Copy(standby, T0 + 200_000);
            while (standby.SegmentCount < 2)
            {
                Copy(standby, T0 + 50_000);
            }

            standby.Commit();
            Eventually.True(() => InspectorFromTimeTests.SealOf(JournalFiles.Segments(dir.Path)[0]) is not null, "the flusher seals the rolled segment");
        }

        // The seal as a version that took the last record's timestamp wrote it.
        var first = JournalFiles.Segments(dir.Path)[0];
        var header = new byte[SegmentHeader.Size];
        using (var file = new FileStream(first, FileMode.Open, FileAccess.ReadWrite))
        {
            file.ReadExactly(header);
            Assert.True(SegmentHeader.TryReadSeal(header, out var count, out var end, out _));
            SegmentHeader.WriteSeal(header, count, end, T0 + 50_000, T0 + 60_000, flags: 0);
            file.Position = 0;
            file.Write(header);
        }

        using var reopened = JournalLog.Open(dir.Path, options);
        var deleted = reopened.ApplyRetention(DateTimeOffset.FromUnixTimeMilliseconds(T0 + 250_000));
        Assert.True(deleted == 0, $"retention by age at T0 + 250 s (100 s) deleted {deleted} segment(s), the first holding a record stamped T0 + 200 s under a seal saying T0 + 50 s");
        using var reader = reopened.OpenReader(ReadStart.FromTimestamp(T0 + 100_000));
        Assert.Equal(0, reader.NextOffset);
    }

    public static TheoryData<string> ManySegmentModes => ["live", "reopened", "reopened after a stop before the flusher sealed"];

    /// <summary>
    /// Segments' last timestamps are not in log order: an open that recovers several unsealed segments (the process
    /// stopped before its flusher sealed the ones it had rolled) gives each the newest of its own records, so a segment of
    /// copied records older than one before it has an older last timestamp than that one. A start at a time therefore
    /// looks at the segments from the oldest, passing over only those whose last timestamp is older (a binary search over
    /// the segments would take the older one in the middle for the end of the earlier ones and pass over the newer record).
    /// </summary>
    [Theory]
    [MemberData(nameof(ManySegmentModes))]
    public void A_start_at_a_time_over_many_segments_whose_copied_timestamps_go_back_across_a_boundary_finds_the_first_in_log_order(string mode)
    {
        using var dir = new TempDirectory();
        var journal = JournalLog.Open(dir.Path, AppendReadTests.Small);
        try
        {
            // Ten segments: the first four stamped 10 to 40 ms but one record of the fourth 500 ms, the next six 100 ms and
            // on, older than it (a standby's copy of records a primary stamped out of order).
            long newOffset = -1;
            var inFourth = 0;
            while (journal.SegmentCount < 11)
            {
                var segment = journal.SegmentCount - 1;
                var timestamp = segment < 4 ? T0 + (10 * (segment + 1)) : T0 + 100 + (10 * segment);
                if (segment == 3 && ++inFourth == 100)
                {
                    (newOffset, timestamp) = (journal.NextOffset, T0 + 500);
                }

                Copy(journal, timestamp);
            }

            journal.Commit();
            var segments = JournalFiles.Segments(dir.Path);
            Eventually.True(() => segments.Take(10).All(s => File.Exists(IndexFile.PathFor(s))), "the flusher seals the first ten segments");
            if (mode != "live")
            {
                journal.Dispose();
                if (mode != "reopened")
                {
                    // Stopped before the flusher sealed the segments from the fourth on: no seals, no index files.
                    foreach (var path in segments.Skip(3))
                    {
                        using (var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite))
                        {
                            file.Position = 64;
                            file.Write(new byte[64]);
                        }

                        File.Delete(IndexFile.PathFor(path));
                    }
                }

                journal = JournalLog.Open(dir.Path, AppendReadTests.Small);
            }

            var all = new List<(long Offset, long Timestamp)>();
            JournalInspector.Dump(dir.Path, null, null, long.MaxValue, r => all.Add((r.Offset, r.Timestamp)), out var problem);
            Assert.Null(problem);
            Assert.Equal(journal.DurableOffset, all.Count);
            Assert.Equal(T0 + 500, all[(int)newOffset].Timestamp);
            foreach (var t in new[] { T0, T0 + 35, T0 + 40, T0 + 41, T0 + 150, T0 + 190, T0 + 300, T0 + 500, T0 + 501 })
            {
                var expected = all.FirstOrDefault(r => r.Timestamp >= t, (all.Count, 0)).Offset;
                using var reader = journal.OpenReader(ReadStart.FromTimestamp(t));
                Assert.True(expected == reader.NextOffset, $"{mode}: from {t - T0} ms after T0 the reader starts at offset {reader.NextOffset}; expected {expected}, the first record stamped at or after it ({all.Count} records, the one stamped 500 ms at {newOffset})");
            }
        }
        finally
        {
            journal.Dispose();
        }
    }

    /// <summary>
    /// Three segments of copied records whose timestamps go back: the first holds 300 ms (on an index entry) among 10 and
    /// 20 ms, the second 400 ms (between index entries) among 30 and 40 ms, the third, unsealed, 50 ms. The first two are
    /// sealed, with their index files, when it returns.
    /// </summary>
    private static void WriteOutOfOrder(JournalLog journal, string directory)
    {
        Copy(journal, T0 + 10);
        for (var i = 1; journal.SegmentCount < 2; i++)
        {
            Copy(journal, i == 3 ? T0 + 300 : T0 + 20); // record 3 is the first after the first index interval
        }

        for (var i = 1; journal.SegmentCount < 3; i++)
        {
            Copy(journal, i == 4 ? T0 + 400 : i < 4 ? T0 + 30 : T0 + 40); // relative offsets 0 (the record that rolled), 3 and 6 are indexed, 4 is not
        }

        for (var i = 0; i < 5; i++)
        {
            Copy(journal, T0 + 50);
        }

        journal.Commit();
        var segments = JournalFiles.Segments(directory);
        Eventually.True(() => segments.Take(2).All(s => File.Exists(IndexFile.PathFor(s))), "the flusher seals the first two segments and writes their index files");
    }

    /// <summary>Appends one record stamped <paramref name="timestamp"/> as a standby copies it: verbatim.</summary>
    private static void Copy(JournalLog journal, long timestamp)
    {
        var length = RecordLayout.HeaderSize + PayloadLength;
        var record = new byte[RecordLayout.Align(length)];
        BinaryPrimitives.WriteUInt32LittleEndian(record, (uint)length);
        BinaryPrimitives.WriteInt64LittleEndian(record.AsSpan(RecordLayout.OffsetOffset), journal.NextOffset);
        BinaryPrimitives.WriteInt64LittleEndian(record.AsSpan(RecordLayout.TimestampOffset), timestamp);
        record.AsSpan(RecordLayout.HeaderSize, PayloadLength).Fill((byte)'c');
        BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(RecordLayout.CrcOffset), RecordLayout.ComputeCrc(record, length));
        Assert.True(journal.TryAppendRecords(record, journal.NextOffset, out var appended));
        Assert.Equal(1, appended);
    }
}
