using System.Buffers.Binary;
using FastBroker.Journal.Internal;
using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

/// <summary>
/// Records a standby copies (<see cref="JournalLog.TryAppendRecords"/>) keep their timestamps, which may be older than the
/// one before them: the seal and retention by age must hold for such a journal too, while it is written and after it is
/// reopened.
/// </summary>
public class CopiedTimestampTests
{
    private const long T0 = 1_700_000_000_000;
    private const int PayloadLength = 200;

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
