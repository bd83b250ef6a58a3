using System.Buffers.Binary;
using FastBroker.Journal.Internal;
using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

/// <summary>
/// A start at a time (<see cref="ReadStart.FromTimestamp"/>) is the first durable record in log order stamped at or
/// after the time, the durable end when there is none, whatever order the stamps are in: checked against a scan of
/// every record (<see cref="JournalInspector.Dump(string, long?, long?, long, JournalInspector.RecordVisitor, out string?)"/>)
/// for many random journals, live, reopened, reopened with unsealed segments, after a torn tail and after retention.
/// </summary>
public class TimeSearchTests
{
    private const long T0 = 1_700_000_000_000;
    private const int PayloadLength = 200; // 232 bytes stored: an index entry (512-byte interval) every third record
    private const int PerSegment = ((64 << 10) - SegmentHeader.Size) / 232; // records in a 64 KiB segment
    private static readonly TimeSpan s_maxAge = TimeSpan.FromDays(3650);

    public static TheoryData<int, string> Cases()
    {
        var data = new TheoryData<int, string>();
        foreach (var mode in new[] { "live", "reopened", "reopened unsealed", "torn tail", "retention" })
        {
            for (var seed = 1; seed <= 8; seed++)
            {
                data.Add(seed, mode);
            }
        }

        return data;
    }

    /// <summary>
    /// A random journal (even seeds: records copied verbatim, as a standby does, whose stamps go forward, repeat, go back
    /// a little, step back far and jump ahead for one record; odd seeds: appends given those stamps, which the journal
    /// raises to the newest so far) of 7 to 14 segments, then more records after the mode's reopen or retention (rolling
    /// again): every start at a time is the one a scan of all the records gives.
    /// </summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void A_start_at_a_time_is_the_first_record_in_log_order_stamped_at_or_after_it(int seed, string mode)
    {
        using var dir = new TempDirectory();
        // Retention by age: a pass at the real time (the flusher's) deletes nothing of records stamped in 2023.
        var options = mode == "retention" ? AppendReadTests.Small with { RetentionMaxAge = s_maxAge } : AppendReadTests.Small;
        var random = new Random(seed);
        var stamps = new Stamps(random);
        var copied = seed % 2 == 0;
        var journal = JournalLog.Open(dir.Path, options);
        try
        {
            Write(journal, stamps, copied, random.Next(2000, 4000));
            var segments = JournalFiles.Segments(dir.Path);
            Eventually.True(() => segments.SkipLast(1).All(s => File.Exists(IndexFile.PathFor(s))), "the flusher seals every segment but the last");
            switch (mode)
            {
                case "reopened":
                    journal.Dispose();
                    journal = JournalLog.Open(dir.Path, options);
                    break;
                case "reopened unsealed":
                    // Stopped before the flusher sealed the segments from a random one on: no seals, no index files, so
                    // the open gives each the newest of its own records.
                    journal.Dispose();
                    foreach (var path in segments.Skip(random.Next(1, segments.Length)))
                    {
                        Unseal(path);
                    }

                    journal = JournalLog.Open(dir.Path, options);
                    break;
                case "torn tail":
                    // The last record of the last segment torn: the open drops it.
                    journal.Dispose();
                    var last = segments.Last(s => JournalFiles.Records(s).Count > 0);
                    foreach (var path in segments.Where(s => string.CompareOrdinal(s, last) >= 0))
                    {
                        Unseal(path);
                    }

                    var torn = JournalFiles.Records(last)[^1];
                    JournalFiles.FlipBit(last, torn.Position + RecordLayout.HeaderSize + 7);
                    journal = JournalLog.Open(dir.Path, options);
                    Assert.Equal(1, journal.Recovery.DroppedRecordCount);
                    break;
                case "retention":
                    // A pass as if it were the maximum age after the newest record of the first three segments: they go.
                    var newest = 0L;
                    JournalInspector.Dump(dir.Path, null, null, 3 * PerSegment, r => newest = Math.Max(newest, r.Timestamp), out _);
                    Assert.True(journal.ApplyRetention(DateTimeOffset.FromUnixTimeMilliseconds(newest + 1) + s_maxAge) >= 3, "retention deletes the oldest segments");
                    break;
            }

            AssertEveryStart(journal, dir.Path, $"seed {seed}, {mode}");
            Write(journal, stamps, copied, random.Next(300, 900));
            AssertEveryStart(journal, dir.Path, $"seed {seed}, {mode}, then appended");
        }
        finally
        {
            journal.Dispose();
        }
    }

    /// <summary>
    /// Records of one stamp over several segments, the first of them in the middle of a segment, and a stamp that starts
    /// exactly at a segment's first record: a start at that stamp is the first record holding it, one just after it the
    /// first record of the next stamp, live and reopened.
    /// </summary>
    [Fact]
    public void A_start_at_a_stamp_that_many_records_across_segments_share_is_the_first_of_them()
    {
        using var dir = new TempDirectory();
        using (var journal = JournalLog.Open(dir.Path, AppendReadTests.Small))
        {
            // Offsets 0 to 99 stamped 0 to 99 ms, then 1000 ms up to the end of the third segment, then 2000 ms from the
            // first record of the fourth into the fifth.
            for (var i = 0; i < 5 * PerSegment; i++)
            {
                Copy(journal, i < 100 ? T0 + i : i < 3 * PerSegment ? T0 + 1000 : T0 + 2000);
            }

            journal.Commit();
            Assert.Equal(Segment.FileNameFor(3 * PerSegment), Path.GetFileName(JournalFiles.Segments(dir.Path)[3]));
            Assert.Equal(100, ReadFirstOffset(journal, T0 + 100));
            Assert.Equal(100, ReadFirstOffset(journal, T0 + 1000));
            Assert.Equal(3 * PerSegment, ReadFirstOffset(journal, T0 + 1001));
            Assert.Equal(3 * PerSegment, ReadFirstOffset(journal, T0 + 2000));
            Assert.Equal(5 * PerSegment, ReadFirstOffset(journal, T0 + 2001));
            AssertEveryStart(journal, dir.Path, "live");
        }

        using var reopened = JournalLog.Open(dir.Path, AppendReadTests.Small);
        AssertEveryStart(reopened, dir.Path, "reopened");
    }

    /// <summary>
    /// Stamps that grow (every journal its own appends wrote): a start at a time looks at about log2 of the segments (the
    /// binary search over their running newest) and the one that holds the record, not every segment before it.
    /// </summary>
    [Fact]
    public void A_start_at_a_time_looks_at_a_logarithmic_number_of_segments()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, AppendReadTests.Small);
        const int Segments = 128;
        var payload = new byte[PayloadLength];
        while (journal.SegmentCount < Segments)
        {
            Assert.True(journal.TryAppend(default, default, payload, RecordFlags.None, T0 + journal.NextOffset, out _));
        }

        journal.Commit();
        var bound = (int)Math.Ceiling(Math.Log2(Segments)) + 2;
        var (worst, worstAt) = (0L, 0L);
        for (var i = 0; i < Segments; i++)
        {
            // The first record of a segment, or one in its middle (the last segment holds only its first).
            var offset = (i * (long)PerSegment) + (i % 2 == 1 && i < Segments - 1 ? PerSegment / 2 : 0);
            var before = journal.TimeSearchProbes;
            Assert.Equal(offset, ReadFirstOffset(journal, T0 + offset));
            var probes = journal.TimeSearchProbes - before;
            (worst, worstAt) = probes > worst ? (probes, offset) : (worst, worstAt);
        }

        Assert.True(worst <= bound, $"a start at a time looked at {worst} of {Segments} segments (from offset {worstAt}'s stamp); at most {bound}: log2 of them for the binary search, and the one holding the record");
    }

    private static long ReadFirstOffset(JournalLog journal, long timestamp)
    {
        using var reader = journal.OpenReader(ReadStart.FromTimestamp(timestamp));
        return reader.NextOffset;
    }

    /// <summary>
    /// Every start at a time, from before the oldest stamp to after the newest, each stamp and the millisecond after it:
    /// the first record a scan of the journal's files finds stamped at or after it, or the durable end.
    /// </summary>
    internal static void AssertEveryStart(JournalLog journal, string directory, string what)
    {
        journal.Commit();
        Eventually.True(() => journal.DurableOffset == journal.NextOffset, "every record is durable");
        var all = new List<(long Offset, long Timestamp)>();
        JournalInspector.Dump(directory, null, null, long.MaxValue, r => all.Add((r.Offset, r.Timestamp)), out var problem);
        Assert.Null(problem);
        Assert.Equal(journal.DurableOffset - journal.FirstOffset, all.Count);
        var times = all.Select(r => r.Timestamp).Distinct().SelectMany(t => new[] { t, t + 1 }).Append(0).Append(all.Min(r => r.Timestamp) - 1).Distinct();
        foreach (var t in times)
        {
            var expected = all.FirstOrDefault(r => r.Timestamp >= t, (journal.DurableOffset, 0)).Offset;
            var actual = ReadFirstOffset(journal, t);
            Assert.True(expected == actual, $"{what}: from {t - T0} ms after T0 the reader starts at offset {actual}; expected {expected}, the first record stamped at or after it (offsets {journal.FirstOffset} to {journal.DurableOffset}, {journal.SegmentCount} segments)");
        }
    }

    private static void Write(JournalLog journal, Stamps stamps, bool copied, int count)
    {
        var payload = new byte[PayloadLength];
        for (var i = 0; i < count; i++)
        {
            var timestamp = stamps.Next();
            if (copied)
            {
                Copy(journal, timestamp);
            }
            else
            {
                Assert.True(journal.TryAppend(default, default, payload, RecordFlags.None, timestamp, out _));
            }
        }
    }

    /// <summary>Clears a segment's seal (bytes 64 to 127) and deletes its index file: as if the flusher never sealed it.</summary>
    private static void Unseal(string path)
    {
        using (var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite))
        {
            file.Position = 64;
            file.Write(new byte[64]);
        }

        File.Delete(IndexFile.PathFor(path));
    }

    /// <summary>Appends one record stamped <paramref name="timestamp"/> as a standby copies it: verbatim.</summary>
    internal static void Copy(JournalLog journal, long timestamp)
    {
        var length = RecordLayout.HeaderSize + PayloadLength;
        var record = new byte[RecordLayout.Align(length)];
        BinaryPrimitives.WriteUInt32LittleEndian(record, (uint)length);
        BinaryPrimitives.WriteInt64LittleEndian(record.AsSpan(RecordLayout.OffsetOffset), journal.NextOffset);
        BinaryPrimitives.WriteInt64LittleEndian(record.AsSpan(RecordLayout.TimestampOffset), timestamp);
        record.AsSpan(RecordLayout.HeaderSize, PayloadLength).Fill((byte)'t');
        BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(RecordLayout.CrcOffset), RecordLayout.ComputeCrc(record, length));
        Assert.True(journal.TryAppendRecords(record, journal.NextOffset, out var appended));
        Assert.Equal(1, appended);
    }

    /// <summary>
    /// Stamps as a producer's clock (or a primary's, copied) gives them: mostly forward by 0 to 3 ms (repeats included),
    /// sometimes back a little, now and then a step back of up to 2 s that the clock keeps, and one record 5 s ahead
    /// that it does not.
    /// </summary>
    internal sealed class Stamps(Random random)
    {
        private long _clock = T0 + 10_000;

        internal long Next()
        {
            var roll = random.Next(100);
            if (roll < 80)
            {
                _clock += random.Next(0, 4);
                return _clock;
            }

            if (roll < 90)
            {
                return _clock - random.Next(1, 50);
            }

            if (roll < 95)
            {
                _clock -= random.Next(100, 2000);
                return _clock;
            }

            return _clock + 5000;
        }
    }
}
