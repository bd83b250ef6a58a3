using System.Buffers.Binary;
using FastBroker.Journal.Internal;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.Journal.Tests;

public class ReplicationAppendTests(ITestOutputHelper output)
{
    private static readonly JournalOptions s_primary = AppendReadTests.Small;

    /// <summary>A syncing standby with a small undurable limit, so copies run into back-pressure.</summary>
    private static readonly JournalOptions s_standby = AppendReadTests.Small with { Durability = DurabilityPolicy.GroupCommit, MaxUndurableBytes = 8 << 10 };

    /// <summary>
    /// A flusher pass that fails while the standby is in the middle of a run faults the journal: the records of the
    /// run after the fault are refused, not written (the standby acknowledges its NextOffset as received). The seam
    /// holds the writer where the first record after the fault goes (the fault zeroes the write limit) until the
    /// flusher has faulted.
    /// </summary>
    [Fact]
    public void A_fault_during_a_run_refuses_the_rest_of_the_run()
    {
        using var primaryDir = new TempDirectory();
        using var standbyDir = new TempDirectory();
        using var primary = JournalLog.Open(primaryDir.Path, s_primary);
        AppendReadTests.AppendRange(primary, 3000);
        var run = new List<byte>();
        foreach (var record in Replica.RawRecords(primary))
        {
            run.AddRange(record);
            run.AddRange(new byte[RecordLayout.Align(record.Length) - record.Length]);
        }

        var options = s_primary with { RetentionMaxBytes = 1L << 40, RetentionCheckInterval = TimeSpan.FromMilliseconds(1) };
        using var standby = JournalLog.Open(standbyDir.Path, options);
        long faultedAt = -1;
        standby.ReplicationRoomHook = () =>
        {
            if (faultedAt < 0 && standby.NextOffset > 0)
            {
                faultedAt = standby.NextOffset;
                standby.FlusherPassFault = () => throw new IOException("injected: the flusher's pass fails");
                Eventually.True(() => DurabilityTests.IsFaulted(standby), "the flusher's next pass faults the journal");
            }
        };

        var appended = -1;
        var e = Assert.Throws<JournalException>(() => standby.TryAppendRecords(run.ToArray(), 0, out appended));
        Assert.Equal(JournalErrorCode.Faulted, e.ErrorCode);
        Assert.True(faultedAt > 0, "the run needed room after its first record");
        Assert.Equal(faultedAt, appended);
        Assert.Equal(faultedAt, standby.NextOffset);
    }

    [Fact]
    public void Copying_runs_reproduces_the_primary_byte_for_byte_across_segment_rolls()
    {
        using var primaryDir = new TempDirectory();
        using var standbyDir = new TempDirectory();
        const int Count = 4000;
        List<byte[]> expected;
        using (var primary = JournalLog.Open(primaryDir.Path, s_primary))
        using (var standby = JournalLog.Open(standbyDir.Path, s_standby))
        {
            Replica.AppendVaried(primary, Count, seed: 7);
            Assert.True(primary.SegmentCount >= 8, $"{primary.SegmentCount} segments: small segments roll");
            var pushedBack = Replica.Copy(primary, standby, seed: 3);
            output.WriteLine($"{primary.SegmentCount} segments, standby pushed back {pushedBack} times");
            Assert.True(pushedBack > 0, "runs over 8 KiB exceed the standby's undurable limit");
            Assert.Equal(Count, standby.NextOffset);
            Assert.True(standby.WaitForDurable(Count - 1, Eventually.DefaultTimeout));
            Assert.Equal(primary.SegmentCount, standby.SegmentCount);
            Assert.Equal(primary.FirstOffset, standby.FirstOffset);

            expected = Replica.RawRecords(primary);
            var copied = Replica.RawRecords(standby);
            Assert.Equal(Count, expected.Count);
            Assert.Equal(Count, copied.Count);
            for (var i = 0; i < Count; i++)
            {
                Assert.True(expected[i].AsSpan().SequenceEqual(copied[i]), $"record {i}");
            }

            // The standby's own sparse index answers seeks like the primary's: by offset and by time.
            foreach (var offset in new long[] { 0, 1, 511, 1234, 2999, Count - 1 })
            {
                using var reader = standby.OpenReader(ReadStart.FromOffset(offset));
                Assert.True(reader.TryRead(out var record));
                Assert.Equal(offset, record.Offset);
                Assert.True(record.Raw.SequenceEqual(expected[(int)offset]));
            }

            foreach (var timestamp in new[] { Replica.T0 - 1, Replica.T0 + 7, Replica.T0 + 5003, Replica.T0 + 17_777, Replica.T0 + ((Count - 2) * 5) })
            {
                using var a = primary.OpenReader(ReadStart.FromTimestamp(timestamp));
                using var b = standby.OpenReader(ReadStart.FromTimestamp(timestamp));
                Assert.True(a.TryRead(out var ra), $"primary at {timestamp}");
                Assert.True(b.TryRead(out var rb), $"standby at {timestamp}");
                Assert.Equal(ra.Offset, rb.Offset);
                Assert.True(rb.Timestamp >= timestamp);
            }
        }

        // Closed, every finished segment is sealed and indexed: names, record bytes and index files all match.
        Replica.AssertSameFiles(primaryDir.Path, standbyDir.Path);
        using (var standby = JournalLog.Open(standbyDir.Path, s_standby))
        {
            Assert.True(standby.Recovery.IsClean, standby.Recovery.ToString());
            Assert.Equal(Count, standby.NextOffset);
            var reopened = Replica.RawRecords(standby);
            Assert.Equal(Count, reopened.Count);
            Assert.True(reopened[^1].AsSpan().SequenceEqual(expected[^1]));
        }
    }

    [Fact]
    public void Copied_records_become_visible_at_commit_and_normal_appends_follow_them()
    {
        using var primaryDir = new TempDirectory();
        using var standbyDir = new TempDirectory();
        using var primary = JournalLog.Open(primaryDir.Path, s_primary);
        using var standby = JournalLog.Open(standbyDir.Path, s_primary);
        AppendReadTests.AppendRange(primary, 100);
        using var tail = standby.OpenReader(ReadStart.Beginning);
        using (var reader = primary.OpenReader(ReadStart.Beginning))
        {
            Assert.True(reader.TryReadRun(1 << 20, out var run));
            Assert.Equal(100, run.RecordCount);
            Assert.True(standby.TryAppendRecords(run.Bytes, run.FirstOffset, out var appended));
            Assert.Equal(100, appended);
        }

        Assert.Equal(100, standby.NextOffset);
        Assert.Equal(0, standby.DurableOffset);
        Assert.False(tail.TryRead(out _), "not visible before Commit");
        standby.Commit();
        Assert.Equal(100, standby.DurableOffset);
        Assert.True(tail.TryRead(out var first));
        Assert.Equal(0, first.Offset);
        Assert.Equal(100, AppendReadTests.ReadAllChecked(standby));

        // Promoted: the standby appends on its own from where the copy ended.
        AppendReadTests.AppendRange(standby, 5);
        Assert.Equal(105, AppendReadTests.ReadAllChecked(standby));
    }

    [Fact]
    public void A_first_offset_other_than_NextOffset_is_refused_and_nothing_is_written()
    {
        using var primaryDir = new TempDirectory();
        using var standbyDir = new TempDirectory();
        using var primary = JournalLog.Open(primaryDir.Path, s_primary);
        using var standby = JournalLog.Open(standbyDir.Path, s_primary);
        AppendReadTests.AppendRange(primary, 200);
        Replica.Copy(primary, standby, until: 50);
        Assert.Equal(50, standby.NextOffset);
        var next = RunBytes(primary, 50);
        foreach (var wrong in new long[] { 49, 51, 0 })
        {
            var e = Assert.Throws<JournalException>(() => standby.TryAppendRecords(next, wrong, out _));
            Assert.Equal(JournalErrorCode.OffsetMismatch, e.ErrorCode);
            Assert.Contains($"start at offset {wrong}", e.Message, StringComparison.Ordinal);
            Assert.Contains("next offset is 50", e.Message, StringComparison.Ordinal);
            Assert.Equal(50, standby.NextOffset);
        }

        // The claimed offset is right but the records are not the next ones: refused by the per-record check.
        var later = RunBytes(primary, 60);
        var c = Assert.Throws<JournalCorruptionException>(() => standby.TryAppendRecords(later, 50, out _));
        Assert.Contains("out of sequence", c.Reason, StringComparison.Ordinal);
        Assert.Equal(0, c.Position);
        Assert.Equal(50, c.ExpectedOffset);
        Assert.Equal(50, standby.NextOffset);

        standby.Commit();
        Assert.Equal(50, AppendReadTests.ReadAllChecked(standby));
        var segment = JournalFiles.Segments(standbyDir.Path)[^1];
        var records = JournalFiles.Records(segment);
        Assert.Equal(50, records.Count);
        Assert.True(JournalFiles.AllZeroFrom(segment, records[^1].Position + ((records[^1].Length + 7) & ~7)), "nothing written after record 49");

        Replica.Copy(primary, standby, from: 50);
        Assert.Equal(200, AppendReadTests.ReadAllChecked(standby));
    }

    [Theory]
    [InlineData("checksum", "CRC32C mismatch")]
    [InlineData("length", "bad record length")]
    [InlineData("zero", "record length is zero")]
    [InlineData("truncated", "truncated record")]
    [InlineData("padding", "record padding missing")]
    [InlineData("offset", "record offset 3 out of sequence")]
    public void A_damaged_record_is_refused_naming_offset_and_reason_and_nothing_of_it_is_written(string damage, string reason)
    {
        using var primaryDir = new TempDirectory();
        using var standbyDir = new TempDirectory();
        using var primary = JournalLog.Open(primaryDir.Path, s_primary);
        using var standby = JournalLog.Open(standbyDir.Path, s_primary);
        AppendReadTests.AppendRange(primary, 10);
        var good = RunBytes(primary, 0);
        var bytes = good.ToArray();
        var position = Replica.StoredLengthOf(bytes, 4);
        var length = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(position));
        Assert.NotEqual(0, length % 8); // record 4 has padding (its payload is 12 bytes)
        switch (damage)
        {
            case "checksum":
                bytes[position + length - 1] ^= 0x10;
                break;
            case "length":
                BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(position), 1 << 20);
                break;
            case "zero":
                BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(position), 0);
                break;
            case "truncated":
                bytes = bytes[..(position + 20)];
                break;
            case "padding":
                bytes = bytes[..(position + length)];
                break;
            default:
                // A duplicate of record 3 with a valid checksum: only the offset check can catch it.
                BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(position + 8), 3);
                BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(position + 4), RecordLayout.ComputeCrc(bytes.AsSpan(position, length), length));
                break;
        }

        var appended = -1;
        var e = Assert.Throws<JournalCorruptionException>(() => standby.TryAppendRecords(bytes, 0, out appended));
        output.WriteLine(e.Message);
        Assert.Equal(JournalErrorCode.Corruption, e.ErrorCode);
        Assert.Contains(reason, e.Reason, StringComparison.Ordinal);
        Assert.Contains("expected offset 4", e.Message, StringComparison.Ordinal);
        Assert.Equal(position, e.Position);
        Assert.Equal(4, e.ExpectedOffset);
        Assert.Equal(4, appended);
        Assert.Equal(4, standby.NextOffset);

        standby.Commit();
        var copied = Replica.RawRecords(standby);
        Assert.Equal(4, copied.Count);
        var segment = JournalFiles.Segments(standbyDir.Path)[^1];
        var stored = JournalFiles.Records(segment);
        Assert.Equal(4, stored.Count);
        Assert.True(JournalFiles.AllZeroFrom(segment, JournalFiles.SegmentHeaderSize + position), "nothing of record 4 was written");

        // The intact records from 4 on are accepted where the copy stopped.
        Assert.True(standby.TryAppendRecords(good.AsSpan(position), 4, out var rest));
        Assert.Equal(6, rest);
        standby.Commit();
        Assert.Equal(10, AppendReadTests.ReadAllChecked(standby));
    }

    [Fact]
    public void Back_pressure_returns_false_with_the_records_appended_so_far_and_the_rest_is_resent()
    {
        using var primaryDir = new TempDirectory();
        using var standbyDir = new TempDirectory();
        using var primary = JournalLog.Open(primaryDir.Path, s_primary);
        using var standby = JournalLog.Open(standbyDir.Path, s_primary with { Durability = DurabilityPolicy.GroupCommit, MaxUndurableBytes = 1024 });
        AppendReadTests.AppendRange(primary, 200);
        var bytes = RunBytes(primary, 0);
        Assert.Equal(bytes.Length, Replica.StoredLengthOf(bytes, 200)); // one run: all 200 records are in the first segment

        // Records of one call are published when it returns, so the flusher cannot catch up in the middle of it.
        Assert.False(standby.TryAppendRecords(bytes, 0, out var appended));
        Assert.InRange(appended, 1, 199);
        Assert.Equal(appended, standby.NextOffset);
        var rounds = 1;
        ReadOnlySpan<byte> rest = bytes;
        var next = 0L;
        while (true)
        {
            rest = rest.Slice(Replica.StoredLengthOf(rest, appended));
            next += appended;
            Assert.Equal(next, standby.NextOffset);
            standby.Commit();
            Assert.True(standby.WaitForDurable(next - 1, Eventually.DefaultTimeout));
            if (standby.TryAppendRecords(rest, next, out appended))
            {
                break;
            }

            rounds++;
        }

        Assert.True(rounds > 1, "1 KiB of undurable records at a time: several rounds");
        standby.Commit();
        Assert.True(standby.WaitForDurable(199, Eventually.DefaultTimeout));
        var expected = Replica.RawRecords(primary);
        var copied = Replica.RawRecords(standby);
        Assert.Equal(200, copied.Count);
        Assert.All(Enumerable.Range(0, 200), i => Assert.True(expected[i].AsSpan().SequenceEqual(copied[i]), $"record {i}"));
    }

    [Fact]
    public void A_full_disk_refuses_the_record_that_needs_a_new_segment_and_keeps_the_ones_before()
    {
        using var primaryDir = new TempDirectory();
        using var dir = new TempDirectory();
        var mountPoint = dir.Combine("small-fs");
        Directory.CreateDirectory(mountPoint);
        var (mounted, why) = DiskFullTests.Run("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mountPoint);
        if (!mounted)
        {
            output.WriteLine($"SKIPPED: cannot mount a 1 MiB tmpfs at {mountPoint} ({why}); this test needs root or CAP_SYS_ADMIN.");
            return;
        }

        try
        {
            using var primary = JournalLog.Open(primaryDir.Path, s_primary);
            Replica.AppendVaried(primary, 4000, seed: 11);
            Assert.True(primary.SegmentCount > 20, "more segments than the 1 MiB file system holds");
            using var standby = JournalLog.Open(Path.Combine(mountPoint, "journal"), s_primary with { PrefaultSegments = false });
            using var reader = primary.OpenReader(ReadStart.Beginning);
            JournalFullException? full = null;
            long failedRunStart = -1;
            var appended = 0;
            while (full is null && reader.TryReadRun(8 << 10, out var run))
            {
                try
                {
                    Assert.True(standby.TryAppendRecords(run.Bytes, run.FirstOffset, out appended));
                    standby.Commit();
                }
                catch (JournalFullException e)
                {
                    full = e;
                    failedRunStart = run.FirstOffset;
                }
            }

            Assert.NotNull(full);
            output.WriteLine(full.Message);
            Assert.Equal(failedRunStart + appended, standby.NextOffset);
            Assert.Equal(Path.Combine(mountPoint, "journal", $"{standby.NextOffset:D20}.seg"), full.SegmentPath);
            Assert.False(File.Exists(full.SegmentPath), "the half-created segment is removed");
            standby.Commit();
            var expected = Replica.RawRecords(primary);
            var copied = Replica.RawRecords(standby);
            Assert.Equal(standby.NextOffset, copied.Count);
            Assert.All(Enumerable.Range(0, copied.Count), i => Assert.True(expected[i].AsSpan().SequenceEqual(copied[i]), $"record {i}"));
        }
        finally
        {
            var (unmounted, err) = DiskFullTests.Run("umount", mountPoint);
            if (!unmounted)
            {
                DiskFullTests.Run("umount", "-l", mountPoint);
                output.WriteLine("umount: " + err);
            }
        }
    }

    /// <summary>The primary's records from <paramref name="from"/> to the end of their segment, as one run.</summary>
    private static byte[] RunBytes(JournalLog primary, long from)
    {
        using var reader = primary.OpenReader(ReadStart.FromOffset(from));
        Assert.True(reader.TryReadRun(1 << 20, out var run));
        Assert.Equal(from, run.FirstOffset);
        return run.Bytes.ToArray();
    }
}
