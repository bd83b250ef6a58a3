using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

public class ReaderTests
{
    [Fact]
    public void A_reader_on_an_empty_journal_returns_nothing_then_tails_what_is_appended()
    {
        // Regression: the reader used to loop forever re-acquiring the active segment when it held no records.
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, AppendReadTests.Small with { Durability = DurabilityPolicy.None });
        using var fromStart = journal.OpenReader(ReadStart.Beginning);
        using var fromEnd = journal.OpenReader(ReadStart.End);
        Assert.False(fromStart.TryRead(out _));
        Assert.False(fromEnd.TryRead(out _));
        AppendReadTests.AppendRange(journal, 3);
        journal.Commit();
        foreach (var reader in new[] { fromStart, fromEnd })
        {
            for (long expected = 0; expected < 3; expected++)
            {
                Assert.True(reader.TryRead(out var r));
                Assert.Equal(expected, r.Offset);
            }

            Assert.False(reader.TryRead(out _));
        }
    }

    [Fact]
    public void Every_offset_is_found_by_seek_across_segments()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, AppendReadTests.Small);
        AppendReadTests.AppendRange(journal, 2500);
        Assert.True(journal.SegmentCount > 2);
        for (long offset = 0; offset < 2500; offset += 7)
        {
            using var reader = journal.OpenReader(ReadStart.FromOffset(offset));
            Assert.Equal(offset, reader.NextOffset);
            Assert.True(reader.TryRead(out var r));
            Assert.Equal(offset, r.Offset);
            Assert.True(r.Payload.SequenceEqual(AppendReadTests.PayloadFor(offset)));
        }

        using var beyond = journal.OpenReader(ReadStart.FromOffset(10_000));
        Assert.Equal(2500, beyond.NextOffset);
        Assert.False(beyond.TryRead(out _));
    }

    [Fact]
    public void Seek_by_time_finds_the_first_record_at_or_after_it()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, AppendReadTests.Small);
        const long T0 = 1_700_000_000_000;
        for (long i = 0; i < 2000; i++)
        {
            // Ten records per millisecond, so several records share a timestamp.
            Assert.True(journal.TryAppend(default, default, AppendReadTests.PayloadFor(i), RecordFlags.None, T0 + (i / 10), out _));
        }

        journal.Commit();
        foreach (var t in new long[] { T0 - 5, T0, T0 + 1, T0 + 37, T0 + 100, T0 + 150, T0 + 199 })
        {
            using var reader = journal.OpenReader(ReadStart.FromTimestamp(t));
            var expected = Math.Max(0, (t - T0) * 10);
            Assert.Equal(expected, reader.NextOffset);
            Assert.True(reader.TryRead(out var r));
            Assert.True(r.Timestamp >= t);
        }

        using var late = journal.OpenReader(ReadStart.FromTime(DateTimeOffset.FromUnixTimeMilliseconds(T0 + 10_000)));
        Assert.Equal(2000, late.NextOffset);

        // A time between two milliseconds: the records stamped T0 + 37 are before T0 + 37.5, so it starts at T0 + 38.
        using var between = journal.OpenReader(ReadStart.FromTime(DateTimeOffset.FromUnixTimeMilliseconds(T0 + 37).AddTicks(TimeSpan.TicksPerMillisecond / 2)));
        Assert.Equal(380, between.NextOffset);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Seek_by_time_finds_the_first_of_equal_timestamps_that_straddle_a_segment_boundary(bool reopen)
    {
        // The segment search takes the last segment whose first record is strictly older than the time sought: when
        // the next segment starts at that time, the records before it may share it at the end of this one.
        using var dir = new TempDirectory();
        const long T0 = 1_700_000_000_000;
        var payload = new byte[1000];
        var options = AppendReadTests.Small;
        long secondBase = (options.SegmentSize - JournalFiles.SegmentHeaderSize) / JournalLog.StoredSize(0, 0, payload.Length);
        var journal = JournalLog.Open(dir.Path, options);
        try
        {
            for (long i = 0; i < secondBase + 20; i++)
            {
                // T0 + 1 from five records before the boundary to ten after it.
                var timestamp = i < secondBase - 5 ? T0 : i < secondBase + 10 ? T0 + 1 : T0 + 2;
                Assert.True(journal.TryAppend(default, default, payload, RecordFlags.None, timestamp, out _));
            }

            journal.Commit();
            Assert.Equal(2, journal.SegmentCount);
            Assert.Equal(Segment(secondBase), Path.GetFileName(JournalFiles.Segments(dir.Path)[1]));
            if (reopen)
            {
                // The sealed segment's index then comes from its .idx file.
                journal.Dispose();
                journal = JournalLog.Open(dir.Path, options with { VerifySealedSegmentsOnOpen = false });
            }

            foreach (var (timestamp, expected) in new[] { (T0 - 1, 0L), (T0, 0L), (T0 + 1, secondBase - 5), (T0 + 2, secondBase + 10), (T0 + 3, secondBase + 20) })
            {
                using var reader = journal.OpenReader(ReadStart.FromTimestamp(timestamp));
                Assert.Equal(expected, reader.NextOffset);
            }
        }
        finally
        {
            journal.Dispose();
        }

        static string Segment(long baseOffset) => baseOffset.ToString("D20", System.Globalization.CultureInfo.InvariantCulture) + ".seg";
    }

    [Fact]
    public void Reader_from_end_sees_only_new_records()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, AppendReadTests.Small);
        AppendReadTests.AppendRange(journal, 100);
        using var reader = journal.OpenReader(ReadStart.End);
        Assert.False(reader.TryRead(out _));
        AppendReadTests.AppendRange(journal, 5);
        Assert.True(reader.TryRead(out var r));
        Assert.Equal(100, r.Offset);
    }

    [Fact]
    public async Task Tailing_reader_sees_every_record_exactly_once_in_order()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, AppendReadTests.Small with { Durability = DurabilityPolicy.GroupCommit });
        const int Total = 20_000;
        var tail = Task.Run(async () =>
        {
            using var reader = journal.OpenReader(ReadStart.Beginning);
            long expected = 0;
            while (expected < Total)
            {
                while (reader.TryRead(out var r))
                {
                    Assert.Equal(expected, r.Offset);
                    Assert.True(r.Payload.SequenceEqual(AppendReadTests.PayloadFor(expected)));
                    expected++;
                }

                if (expected < Total)
                {
                    await reader.WaitToReadAsync();
                }
            }

            Assert.False(reader.TryRead(out _));
            return expected;
        });

        for (long i = 0; i < Total; i++)
        {
            while (!journal.TryAppend(AppendReadTests.PayloadFor(i), out _))
            {
                journal.WaitForDurable(journal.DurableOffset, Eventually.DefaultTimeout);
            }

            if (i % 37 == 0)
            {
                journal.Commit();
            }
        }

        journal.Commit();
        Assert.Equal(Total, await Eventually.Completes(tail));
    }

    [Fact]
    public void Tailing_reader_never_sees_records_that_are_not_durable()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, AppendReadTests.Small with { Durability = DurabilityPolicy.None });
        using var reader = journal.OpenReader(ReadStart.Beginning);
        for (var i = 0; i < 3000; i++)
        {
            Assert.True(journal.TryAppend(AppendReadTests.PayloadFor(i), out _));
            while (reader.TryRead(out var r))
            {
                Assert.True(r.Offset < journal.DurableOffset);
            }

            if (i % 5 == 0)
            {
                journal.Commit();
            }
        }
    }

    [Fact]
    public void Named_reader_resumes_from_its_saved_position_after_reopen()
    {
        using var dir = new TempDirectory();
        using (var journal = JournalLog.Open(dir.Path, AppendReadTests.Small))
        {
            AppendReadTests.AppendRange(journal, 50);
            using var reader = journal.OpenReader("billing", ReadStart.Beginning);
            for (var i = 0; i < 20; i++)
            {
                Assert.True(reader.TryRead(out _));
            }

            reader.SavePosition();
            Assert.Throws<InvalidOperationException>(() => journal.OpenReader(ReadStart.Beginning).SavePosition());
            Assert.Throws<ArgumentException>(() => journal.OpenReader("../escape", ReadStart.Beginning));
        }

        using (var journal = JournalLog.Open(dir.Path, AppendReadTests.Small))
        {
            Assert.True(journal.TryGetSavedPosition("billing", out var saved));
            Assert.Equal(20, saved);
            using var reader = journal.OpenReader("billing", ReadStart.Beginning);
            Assert.True(reader.TryRead(out var r));
            Assert.Equal(20, r.Offset);
            using var fresh = journal.OpenReader("audit", ReadStart.End);
            Assert.Equal(50, fresh.NextOffset);
        }
    }

    [Fact]
    public void Runs_hold_whole_records_and_parse_back()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, AppendReadTests.Small);
        AppendReadTests.AppendRange(journal, 1000);
        using var reader = journal.OpenReader(ReadStart.Beginning);
        long expected = 0;
        while (reader.TryReadRun(700, out var run))
        {
            Assert.Equal(expected, run.FirstOffset);
            Assert.True(run.Length <= 700 || run.RecordCount == 1);
            var bytes = run.Bytes;
            for (var i = 0; i < run.RecordCount; i++)
            {
                Assert.True(JournalRecord.TryParse(bytes, verifyChecksum: true, out var r, out var consumed));
                Assert.Equal(expected++, r.Offset);
                bytes = bytes.Slice(consumed);
            }

            Assert.True(bytes.IsEmpty);
        }

        Assert.Equal(1000, expected);
    }
}
