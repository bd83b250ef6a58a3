using System.Text;
using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

public class AppendReadTests
{
    internal static readonly JournalOptions Small = new()
    {
        SegmentSize = 64 << 10,
        IndexIntervalBytes = 512,
        Durability = DurabilityPolicy.None,
    };

    internal static byte[] PayloadFor(long offset)
    {
        var length = 8 + (int)(offset % 57);
        var bytes = new byte[length];
        for (var i = 0; i < length; i++)
        {
            bytes[i] = (byte)((offset * 31) + (i * 7) + 1);
        }

        bytes[^1] = (byte)(bytes[^1] | 1); // never ends in zero: a cut tail always changes the record
        return bytes;
    }

    internal static void AppendRange(JournalLog journal, long count)
    {
        for (long i = 0; i < count; i++)
        {
            var expected = journal.NextOffset;
            Assert.True(journal.TryAppend(PayloadFor(expected), out var offset));
            Assert.Equal(expected, offset);
        }

        journal.Commit();
    }

    internal static long ReadAllChecked(JournalLog journal, long from = 0)
    {
        using var reader = journal.OpenReader(ReadStart.FromOffset(from), verifyChecksums: true);
        var expected = reader.NextOffset;
        while (reader.TryRead(out var record))
        {
            Assert.Equal(expected, record.Offset);
            Assert.True(record.Payload.SequenceEqual(PayloadFor(expected)), $"payload of offset {expected}");
            expected++;
        }

        return expected;
    }

    [Fact]
    public void Appended_records_read_back_in_order_across_segments()
    {
        using var dir = new TempDirectory();
        using (var journal = JournalLog.Open(dir.Path, Small))
        {
            AppendRange(journal, 3000);
            Assert.True(journal.SegmentCount > 3, "small segments roll");
            Assert.Equal(3000, journal.DurableOffset);
            Assert.Equal(3000, ReadAllChecked(journal));
        }

        using (var journal = JournalLog.Open(dir.Path, Small))
        {
            Assert.True(journal.Recovery.IsClean, journal.Recovery.ToString());
            Assert.Equal(3000, journal.NextOffset);
            Assert.Equal(3000, ReadAllChecked(journal));
            AppendRange(journal, 10);
            Assert.Equal(3010, ReadAllChecked(journal));
        }
    }

    [Fact]
    public void Key_headers_flags_and_timestamp_round_trip()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, Small);
        var headers = new byte[64];
        var n = RecordHeaderReader.Write(headers, "trace"u8, "abc"u8);
        n += RecordHeaderReader.Write(headers.AsSpan(n), "type"u8, "order"u8);
        Assert.True(journal.TryAppend("key-1"u8, headers.AsSpan(0, n), "hello"u8, RecordFlags.Tombstone, 1_700_000_000_123, out var offset));
        Assert.True(journal.TryAppend(default, default, "later"u8, RecordFlags.None, 1_600_000_000_000, out _)); // earlier: raised
        journal.Commit();

        using var reader = journal.OpenReader(ReadStart.Beginning);
        Assert.True(reader.TryRead(out var r));
        Assert.Equal(offset, r.Offset);
        Assert.Equal("key-1", Encoding.UTF8.GetString(r.Key));
        Assert.Equal("hello", Encoding.UTF8.GetString(r.Payload));
        Assert.Equal(RecordFlags.Tombstone, r.Flags);
        Assert.Equal(1_700_000_000_123, r.Timestamp);
        Assert.True(r.VerifyChecksum());
        var hr = new RecordHeaderReader(r.Headers);
        Assert.True(hr.TryReadNext(out var name, out var value));
        Assert.Equal("trace", Encoding.UTF8.GetString(name));
        Assert.Equal("abc", Encoding.UTF8.GetString(value));
        Assert.True(hr.TryReadNext(out name, out value));
        Assert.Equal("type=order", Encoding.UTF8.GetString(name) + "=" + Encoding.UTF8.GetString(value));
        Assert.True(hr.End);
        Assert.True(reader.TryRead(out var second));
        Assert.Equal(1_700_000_000_123, second.Timestamp);
        Assert.Equal(JournalLog.StoredSize(0, 0, 5), second.StoredLength);
    }

    [Fact]
    public void Batch_appends_publish_together()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, Small);
        using var reader = journal.OpenReader(ReadStart.Beginning);
        for (var round = 0; round < 50; round++)
        {
            var size = 0;
            for (var i = 0; i < 20; i++)
            {
                size += JournalLog.StoredSize(0, 0, PayloadFor(journal.NextOffset + i).Length);
            }

            Assert.True(journal.TryBeginBatch(size, out var batch));
            for (var i = 0; i < 20; i++)
            {
                Assert.Equal(batch.FirstOffset + i, batch.Append(PayloadFor(batch.FirstOffset + i)));
            }

            Assert.Equal(batch.FirstOffset, journal.NextOffset); // not published yet
            batch.Complete();
            Assert.Equal(batch.FirstOffset + 20, journal.NextOffset);
            journal.Commit();
        }

        Assert.Equal(1000, ReadAllChecked(journal));
    }

    [Fact]
    public void Batch_reservation_overrun_throws_instead_of_writing_past_it()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, Small);
        Assert.True(journal.TryBeginBatch(JournalLog.StoredSize(0, 0, 10), out var batch));
        batch.Append(new byte[10]);
        var threw = false;
        try
        {
            batch.Append(new byte[10]);
        }
        catch (InvalidOperationException)
        {
            threw = true;
        }

        Assert.True(threw);
    }

    [Fact]
    public void Oversized_record_is_refused_with_a_typed_error()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, Small);
        var e = Assert.Throws<JournalException>(() => journal.TryAppend(new byte[70 << 10], out _));
        Assert.Equal(JournalErrorCode.RecordTooLarge, e.ErrorCode);
        Assert.True(journal.TryAppend(new byte[journal.MaxStoredRecordSize - 32], out _), "the largest record fits");
    }

    [Fact]
    public void A_second_open_of_the_same_directory_fails_clearly()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, Small);
        var e = Assert.Throws<JournalException>(() => JournalLog.Open(dir.Path, Small));
        Assert.Contains("already open", e.Message, StringComparison.Ordinal);
    }
}
