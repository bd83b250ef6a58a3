using System.Buffers.Binary;
using FastBroker.Journal.Internal;
using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

/// <summary>
/// A start at a time whose search passes a damaged record of a trusted sealed segment lands, as a start at an offset
/// past damage does, on the first record at or after the time whose length, offset and CRC32C check: the damaged ones
/// are passed over, never a start before the time nor past an intact record at or after it.
/// </summary>
public class TimeSeekPastDamageTests
{
    private const long T0 = 1_700_000_000_000;
    private const int PayloadLength = 200; // 232 bytes stored: an index entry (512-byte interval) every third record

    private static readonly JournalOptions s_trusting = AppendReadTests.Small with { VerifySealedSegmentsOnOpen = false };

    [Fact]
    public void A_start_at_a_time_past_damaged_records_lands_on_the_first_intact_record_at_or_after_it_as_a_scan_finds()
    {
        using var dir = new TempDirectory();
        using (var journal = JournalLog.Open(dir.Path, AppendReadTests.Small))
        {
            while (journal.SegmentCount < 3)
            {
                Append(journal, T0 + (journal.NextOffset * 10));
            }

            journal.Commit();
            RetentionTests.SealAll(journal);
        }

        // Damaged: one a time search passes over between index entries, one on an index entry, two in a row.
        var damaged = new[] { 4, 6, 10, 11 }.Select(i => RecordDamage.FlipPayloadByte(dir.Path, 1, i).Offset).ToHashSet();

        // The scan: every record that checks, past the damaged ones.
        var intact = new List<(long Offset, long Timestamp)>();
        JournalInspector.Dump(dir.Path, null, null, long.MaxValue, r => intact.Add((r.Offset, r.Timestamp)), _ => { }, out _, out _, out _);
        Assert.Equal(damaged.Order(), Enumerable.Range(0, (int)intact[^1].Offset + 1).Select(i => (long)i).Except(intact.Select(r => r.Offset)).Order());

        using var reopened = JournalLog.Open(dir.Path, s_trusting);
        var first = damaged.Min();
        for (var offset = first - 4; offset <= damaged.Max() + 4; offset++)
        {
            foreach (var t in new[] { T0 + (offset * 10) - 5, T0 + (offset * 10) })
            {
                var expected = intact.First(r => r.Timestamp >= t).Offset;
                using var reader = reopened.OpenReader(ReadStart.FromTimestamp(t));
                Assert.True(expected == reader.NextOffset, $"from {t - T0} ms after T0 the reader starts at offset {reader.NextOffset}; the scan's first intact record at or after it is {expected} (damaged: {string.Join(", ", damaged)})");
                Assert.True(reader.TryRead(out var record));
                Assert.Equal(expected, record.Offset);
            }
        }
    }

    private static void Append(JournalLog journal, long timestamp)
    {
        var length = RecordLayout.HeaderSize + PayloadLength;
        var record = new byte[RecordLayout.Align(length)];
        BinaryPrimitives.WriteUInt32LittleEndian(record, (uint)length);
        BinaryPrimitives.WriteInt64LittleEndian(record.AsSpan(RecordLayout.OffsetOffset), journal.NextOffset);
        BinaryPrimitives.WriteInt64LittleEndian(record.AsSpan(RecordLayout.TimestampOffset), timestamp);
        record.AsSpan(RecordLayout.HeaderSize, PayloadLength).Fill((byte)'d');
        BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(RecordLayout.CrcOffset), RecordLayout.ComputeCrc(record, length));
        Assert.True(journal.TryAppendRecords(record, journal.NextOffset, out var appended));
        Assert.Equal(1, appended);
    }
}
