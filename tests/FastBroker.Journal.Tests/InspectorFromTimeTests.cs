using System.Buffers.Binary;
using FastBroker.Journal.Internal;
using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

/// <summary>
/// <c>dump --from-time</c> skips a sealed segment unread when its seal's last timestamp is before the time: the seal
/// must then bound every record of the segment, or records at or after the time are lost from the output.
/// </summary>
public class InspectorFromTimeTests
{
    private const long T0 = 1_700_000_000_000;

    /// <summary>
    /// A standby copies records verbatim (<see cref="JournalLog.TryAppendRecords"/> does not restamp them), so its
    /// segment can hold a record newer than the one after it. Reopened, the journal recovered that unsealed segment's
    /// last timestamp from its last record, not its newest; records appended after the reopen then sealed it with a
    /// time older than its newest record, and a dump from a time between the two skipped the segment unread.
    /// </summary>
    [Fact]
    public void A_dump_from_a_time_visits_every_record_at_or_after_it_when_a_segment_holds_a_newer_record_before_an_older_one()
    {
        using var dir = new TempDirectory();
        using (var standby = JournalLog.Open(dir.Path, AppendReadTests.Small))
        {
            CopyRecord(standby, T0 + 200_000);
            CopyRecord(standby, T0 + 50_000);
            standby.Commit();
        }

        using (var journal = JournalLog.Open(dir.Path, AppendReadTests.Small))
        {
            var payload = new byte[100];
            while (journal.SegmentCount < 3)
            {
                Assert.True(journal.TryAppend(default, default, payload, RecordFlags.None, T0 + 60_000, out _));
            }

            journal.Commit();
            Eventually.True(() => SealOf(JournalFiles.Segments(dir.Path)[0]) is not null, "the first segment gets sealed by the flusher");
        }

        var first = JournalFiles.Segments(dir.Path)[0];
        var all = new List<(long Offset, long Timestamp)>();
        Assert.Equal(JournalInspector.Dump(dir.Path, null, null, long.MaxValue, r => all.Add((r.Offset, r.Timestamp)), out var problem), all.Count);
        Assert.Null(problem);
        Assert.Equal((0L, T0 + 200_000), all[0]);

        foreach (var from in new[] { T0 + 100_000, T0 + 200_000 })
        {
            var visited = new List<long>();
            JournalInspector.Dump(dir.Path, null, from, long.MaxValue, r => visited.Add(r.Offset), out problem);
            Assert.Null(problem);
            var expected = all.Where(r => r.Timestamp >= from).Select(r => r.Offset).ToList();
            Assert.True(expected.SequenceEqual(visited), $"--from-time {from - T0} (after T0): {visited.Count} record(s) visited, the first {visited.FirstOrDefault()}; expected {expected.Count}, the first {expected[0]} (timestamp {all[(int)expected[0]].Timestamp - T0} after T0); {Path.GetFileName(first)} sealed with last timestamp {SealOf(first) - T0} after T0");
        }
    }

    /// <summary>Appends one record with <paramref name="timestamp"/> as a standby copies it: verbatim.</summary>
    private static void CopyRecord(JournalLog journal, long timestamp)
    {
        var payload = "copied"u8;
        var length = RecordLayout.HeaderSize + payload.Length;
        var record = new byte[RecordLayout.Align(length)];
        BinaryPrimitives.WriteUInt32LittleEndian(record, (uint)length);
        BinaryPrimitives.WriteInt64LittleEndian(record.AsSpan(RecordLayout.OffsetOffset), journal.NextOffset);
        BinaryPrimitives.WriteInt64LittleEndian(record.AsSpan(RecordLayout.TimestampOffset), timestamp);
        payload.CopyTo(record.AsSpan(RecordLayout.HeaderSize));
        BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(RecordLayout.CrcOffset), RecordLayout.ComputeCrc(record, length));
        Assert.True(journal.TryAppendRecords(record, journal.NextOffset, out var appended));
        Assert.Equal(1, appended);
    }

    /// <summary>The last timestamp of <paramref name="segment"/>'s seal, or null while it has none.</summary>
    internal static long? SealOf(string segment)
    {
        var header = new byte[SegmentHeader.Size];
        using (var file = new FileStream(segment, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
        {
            file.ReadExactly(header);
        }

        return SegmentHeader.TryReadSeal(header, out _, out _, out var lastTimestamp) ? lastTimestamp : null;
    }
}
