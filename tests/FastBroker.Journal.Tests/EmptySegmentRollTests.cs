using System.Buffers.Binary;
using FastBroker.Journal.Internal;
using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

/// <summary>
/// The one roll of a segment with no record: the writer rolls only when a record (or a batch's reservation) does not fit
/// in what is left of the active segment, and an empty one has all its room, so that happens only when it is smaller than
/// the record, i.e. it was created with a smaller <see cref="JournalOptions.SegmentSize"/> than the journal is open with
/// now. The roll then replaces it by a segment of the same base offset (<see cref="RollReplacementTests"/>). Retention
/// never rolls (it deletes sealed segments, never the active one). An empty last segment after others is what a process
/// killed between a roll's creation of the next segment and its first record leaves (here made so, with or without the
/// seal of the segment before it); an append, a batch or a standby's copy then replaces it. After that, and after a
/// reopen, starts at a time and at an offset and retention by age are checked against a scan of every record.
/// </summary>
public class EmptySegmentRollTests
{
    private const long T0 = 1_700_000_000_000;
    private const int PayloadLength = 200;
    private static readonly TimeSpan s_maxAge = TimeSpan.FromDays(3650);
    private static readonly JournalOptions s_larger = AppendReadTests.Small with { SegmentSize = 128 << 10, RetentionMaxAge = s_maxAge };

    public static TheoryData<int, string> Cases()
    {
        var data = new TheoryData<int, string>();
        foreach (var how in new[] { "append", "batch", "copy" })
        {
            for (var seed = 1; seed <= 4; seed++)
            {
                data.Add(seed, how);
            }
        }

        return data;
    }

    /// <param name="seed">The random journal's (even: copied stamps that go back, odd: appends, raised to the newest).</param>
    /// <param name="how">What replaces the empty segment: an append, a batch's reservation or a copied record larger than it.</param>
    [Theory]
    [MemberData(nameof(Cases))]
    public void A_roll_that_replaces_an_empty_last_segment_keeps_every_search_and_retention_right(int seed, string how)
    {
        using var dir = new TempDirectory();
        var random = new Random(seed);
        var stamps = new TimeSearchTests.Stamps(random);
        var copied = seed % 2 == 0;
        long end;
        using (var journal = JournalLog.Open(dir.Path, AppendReadTests.Small with { RetentionMaxAge = s_maxAge }))
        {
            Write(journal, stamps, copied, random.Next(1500, 3000));
            end = journal.NextOffset;
            var written = JournalFiles.Segments(dir.Path);
            Eventually.True(() => written.SkipLast(1).All(s => File.Exists(IndexFile.PathFor(s))), "the flusher seals every segment but the last");
        }

        // Killed right after a roll created the next (64 KiB) segment, before its first record; the flusher had sealed
        // the segment before it or not.
        var last = JournalFiles.Segments(dir.Path)[^1];
        if (random.Next(2) == 0)
        {
            var header = new SegmentHeader(0, end, 64 << 10, T0);
            Segment.Create(Path.Combine(dir.Path, Segment.FileNameFor(end)), header, 16).ForceUnmap();
            using var file = new FileStream(last, FileMode.Open, FileAccess.ReadWrite);
            file.Position = 64;
            file.Write(new byte[64]); // unsealed: the open scans it, and seals it once the roll below has closed it
        }
        else
        {
            using (var journal = JournalLog.Open(dir.Path, AppendReadTests.Small))
            {
                Assert.Equal(end, journal.NextOffset); // opening it closes nothing: the last segment stays unsealed
            }

            Segment.Create(Path.Combine(dir.Path, Segment.FileNameFor(end)), new SegmentHeader(0, end, 64 << 10, T0), 16).ForceUnmap();
        }

        var journal2 = JournalLog.Open(dir.Path, s_larger);
        try
        {
            Assert.True(journal2.Recovery.IsClean, journal2.Recovery.ToString());
            Assert.Equal(end, journal2.NextOffset);
            TimeSearchTests.AssertEveryStart(journal2, dir.Path, $"seed {seed}, {how}, empty last segment");
            using var waiting = journal2.OpenReader(ReadStart.End);
            Assert.False(waiting.TryRead(out _));

            // Larger than the empty segment's room: the roll replaces it, under the same file name.
            var big = Replace(journal2, how, stamps.Next());
            Assert.Equal(end, big);
            journal2.Commit();
            Assert.True(journal2.WaitForDurable(big, Eventually.DefaultTimeout));
            Assert.True(waiting.TryRead(out var record), "a reader at the end of the empty segment reads the record of its replacement");
            Assert.Equal(end, record.Offset);
            waiting.Dispose();
            Assert.Equal(128 << 10, new FileInfo(Path.Combine(dir.Path, Segment.FileNameFor(end))).Length);
            Write(journal2, stamps, copied, random.Next(300, 900));
            AssertEverything(journal2, dir.Path, $"seed {seed}, {how}, replaced");

            journal2.Dispose();
            journal2 = JournalLog.Open(dir.Path, s_larger);
            Assert.True(journal2.Recovery.IsClean, journal2.Recovery.ToString());
            AssertEverything(journal2, dir.Path, $"seed {seed}, {how}, replaced, reopened");

            // Retention by age at the newest stamp of the segment that was replaced: every segment wholly older goes.
            var newest = JournalFiles.Segments(dir.Path).Select(NewestOf).ToArray();
            var at = Array.IndexOf(JournalFiles.Segments(dir.Path), Path.Combine(dir.Path, Segment.FileNameFor(end)));
            var cutoff = newest.Take(at + 1).Max();
            var expected = newest.SkipLast(1).TakeWhile(n => n < cutoff).Count();
            Assert.Equal(expected, journal2.ApplyRetention(DateTimeOffset.FromUnixTimeMilliseconds(cutoff) + s_maxAge));
            AssertEverything(journal2, dir.Path, $"seed {seed}, {how}, replaced, reopened, after retention");
            Write(journal2, stamps, copied, random.Next(300, 900));
            AssertEverything(journal2, dir.Path, $"seed {seed}, {how}, replaced, reopened, after retention, appended");
        }
        finally
        {
            journal2.Dispose();
        }
    }

    /// <summary>
    /// A sealed segment with no record at the end of the journal (the empty segment a replacing roll retired, sealed by
    /// the flusher in the instant between its close and its retirement, back under its name after a power loss undid the
    /// rename; or any copy that has one): the open leaves no segment active, and the first append's roll replaces it
    /// under its file name, as a roll replaces an empty active segment, rather than failing to create that file again.
    /// </summary>
    /// <param name="how">What rolls: an append, a batch's reservation or a copied record.</param>
    [Theory]
    [InlineData("append")]
    [InlineData("batch")]
    [InlineData("copy")]
    public void An_empty_sealed_last_segment_is_replaced_by_the_first_roll_after_the_open(string how)
    {
        using var dir = new TempDirectory();
        var random = new Random(7);
        var stamps = new TimeSearchTests.Stamps(random);
        long end;
        using (var journal = JournalLog.Open(dir.Path, AppendReadTests.Small))
        {
            Write(journal, stamps, copied: true, 1000);
            end = journal.NextOffset;
            journal.Commit();
        }

        // The last segment sealed as the flusher seals it, then an empty one after it, sealed too.
        var last = JournalFiles.Segments(dir.Path)[^1];
        var header = new byte[SegmentHeader.Size];
        using (var file = new FileStream(last, FileMode.Open, FileAccess.ReadWrite))
        {
            file.ReadExactly(header);
            var records = JournalFiles.Records(last);
            var lastRecord = records[^1];
            SegmentHeader.WriteSeal(header, records.Count, lastRecord.Position + RecordLayout.Align(lastRecord.Length), T0 + 1_000_000, T0, SegmentHeader.SealFlagNewestTimestamp);
            file.Position = 0;
            file.Write(header);
        }

        var empty = Segment.Create(Path.Combine(dir.Path, Segment.FileNameFor(end)), new SegmentHeader(0, end, 64 << 10, T0), 16);
        SegmentHeader.WriteSeal(empty.WritableBytes, 0, SegmentHeader.Size, 0, T0, SegmentHeader.SealFlagNewestTimestamp);
        empty.ForceUnmap();

        var options = AppendReadTests.Small with { RetentionMaxAge = s_maxAge };
        using (var journal = JournalLog.Open(dir.Path, options))
        {
            Assert.True(journal.Recovery.IsClean, journal.Recovery.ToString());
            Assert.Equal(end, journal.NextOffset);
            TimeSearchTests.AssertEveryStart(journal, dir.Path, $"{how}, an empty sealed last segment");
            Assert.Equal(end, Replace(journal, how, stamps.Next(), 100));
            Write(journal, stamps, copied: true, 500);
            AssertEverything(journal, dir.Path, $"{how}, the empty sealed segment replaced");
        }

        using (var journal = JournalLog.Open(dir.Path, options))
        {
            Assert.True(journal.Recovery.IsClean, journal.Recovery.ToString());
            Assert.Equal(end + 501, journal.NextOffset);
            AssertEverything(journal, dir.Path, $"{how}, the empty sealed segment replaced, reopened");
        }
    }

    /// <summary>
    /// A process killed in a replacing roll: after the rename of the new (blank) segment over the empty one's name and
    /// before its header was stamped, the name holds a blank file of the new size, which the open removes as an
    /// interrupted creation (no record dropped); after the stamp, an empty segment of the new size. Either way the
    /// journal opens where it ended, and the next append, the searches and retention go on from there.
    /// </summary>
    /// <param name="stamped">Killed after the new segment's header was stamped.</param>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_journal_killed_in_a_replacing_roll_opens_where_it_ended(bool stamped)
    {
        using var dir = new TempDirectory();
        var stamps = new TimeSearchTests.Stamps(new Random(3));
        long end;
        using (var journal = JournalLog.Open(dir.Path, AppendReadTests.Small))
        {
            Write(journal, stamps, copied: true, 1000);
            end = journal.NextOffset;
            journal.Commit();
        }

        var path = Path.Combine(dir.Path, Segment.FileNameFor(end));
        if (stamped)
        {
            Segment.Create(path, new SegmentHeader(0, end, 128 << 10, T0), 16).ForceUnmap();
        }
        else
        {
            using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write);
            file.SetLength(128 << 10);
        }

        using (var journal = JournalLog.Open(dir.Path, s_larger))
        {
            Assert.Equal(0, journal.Recovery.DroppedRecordCount);
            Assert.Equal(stamped ? [] : [path], journal.Recovery.RemovedFiles);
            Assert.Equal(end, journal.NextOffset);
            AssertEverything(journal, dir.Path, $"stamped {stamped}, reopened");
            Assert.Equal(end, Replace(journal, "append", stamps.Next()));
            Write(journal, stamps, copied: true, 500);
            AssertEverything(journal, dir.Path, $"stamped {stamped}, appended");
        }

        using (var journal = JournalLog.Open(dir.Path, s_larger))
        {
            Assert.True(journal.Recovery.IsClean, journal.Recovery.ToString());
            Assert.Equal(end + 501, journal.NextOffset);
            AssertEverything(journal, dir.Path, $"stamped {stamped}, appended, reopened");
        }
    }

    /// <summary>Every start at a time, and a start at every offset (the record there, or the end), against a scan of every record.</summary>
    private static void AssertEverything(JournalLog journal, string directory, string what)
    {
        TimeSearchTests.AssertEveryStart(journal, directory, what);
        var all = new List<long>();
        JournalInspector.Dump(directory, null, null, long.MaxValue, r => all.Add(r.Offset), out var problem);
        Assert.Null(problem);
        for (var offset = journal.FirstOffset - 1; offset <= journal.DurableOffset + 1; offset++)
        {
            using var reader = journal.OpenReader(ReadStart.FromOffset(offset));
            var expected = Math.Clamp(offset, journal.FirstOffset, journal.DurableOffset);
            Assert.True(expected == reader.NextOffset, $"{what}: from offset {offset} the reader starts at {reader.NextOffset}; expected {expected}");
            if (expected < journal.DurableOffset)
            {
                Assert.True(reader.TryRead(out var record), $"{what}: nothing read from offset {offset}");
                Assert.Equal(expected, record.Offset);
            }
        }

        Assert.Equal(journal.DurableOffset - journal.FirstOffset, all.Count);
    }

    private static long NewestOf(string path)
    {
        var bytes = File.ReadAllBytes(path);
        return JournalFiles.Records(path).Select(r => BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(r.Position + RecordLayout.TimestampOffset))).DefaultIfEmpty(0).Max();
    }

    /// <summary>One record (by default of 80 KiB: more than a 64 KiB segment holds), appended as <paramref name="how"/> says; its offset.</summary>
    private static long Replace(JournalLog journal, string how, long timestamp, int payloadLength = 80 << 10)
    {
        var payload = new byte[payloadLength];
        payload.AsSpan().Fill((byte)'b');
        switch (how)
        {
            case "append":
                Assert.True(journal.TryAppend(default, default, payload, RecordFlags.None, timestamp, out var offset));
                return offset;
            case "batch":
                Assert.True(journal.TryBeginBatch(JournalLog.StoredSize(0, 0, payload.Length), out var batch));
                offset = batch.Append(payload);
                batch.Complete();
                return offset;
            default:
                var length = RecordLayout.HeaderSize + payload.Length;
                var record = new byte[RecordLayout.Align(length)];
                BinaryPrimitives.WriteUInt32LittleEndian(record, (uint)length);
                BinaryPrimitives.WriteInt64LittleEndian(record.AsSpan(RecordLayout.OffsetOffset), journal.NextOffset);
                BinaryPrimitives.WriteInt64LittleEndian(record.AsSpan(RecordLayout.TimestampOffset), timestamp);
                payload.CopyTo(record.AsSpan(RecordLayout.HeaderSize));
                BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(RecordLayout.CrcOffset), RecordLayout.ComputeCrc(record, length));
                offset = journal.NextOffset;
                Assert.True(journal.TryAppendRecords(record, offset, out var appended));
                Assert.Equal(1, appended);
                return offset;
        }
    }

    private static void Write(JournalLog journal, TimeSearchTests.Stamps stamps, bool copied, int count)
    {
        var payload = new byte[PayloadLength];
        for (var i = 0; i < count; i++)
        {
            var timestamp = stamps.Next();
            if (copied)
            {
                TimeSearchTests.Copy(journal, timestamp);
            }
            else
            {
                Assert.True(journal.TryAppend(default, default, payload, RecordFlags.None, timestamp, out _));
            }
        }
    }
}
