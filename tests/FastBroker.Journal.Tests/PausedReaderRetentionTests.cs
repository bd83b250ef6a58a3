using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

/// <summary>
/// A paused reader (one that stopped reading: no credit, a slow consumer, a caller holding it idle) does not keep the
/// mapping of a segment retention deleted, so the unlinked file's disk blocks are freed in the retention pass. What the
/// kernel still maps is read from <c>/proc/self/maps</c>, where a mapping of an unlinked file ends in "(deleted)".
/// A reader that holds a record's spans keeps the segment until its next call, so those spans stay readable.
/// </summary>
public class PausedReaderRetentionTests
{
    /// <summary>Long enough for a loaded machine; on failure the mapping is still there at the end of it.</summary>
    private static readonly TimeSpan s_released = TimeSpan.FromSeconds(10);

    /// <summary>Mappings in this process of <paramref name="segmentPath"/>'s file after it was unlinked.</summary>
    internal static int DeletedMappings(string segmentPath)
    {
        var suffix = " " + Path.GetFullPath(segmentPath) + " (deleted)";
        return File.ReadLines("/proc/self/maps").Count(line => line.EndsWith(suffix, StringComparison.Ordinal));
    }

    /// <summary>
    /// A journal of 64 KiB segments, 3 kept by size, with 200 records (all in segment 0); returns it and segment 0's path.
    /// Retention is run by the tests (the flusher's pass is an hour away).
    /// </summary>
    private static JournalLog Open(TempDirectory dir, out string segment0)
    {
        var journal = JournalLog.Open(dir.Path, AppendReadTests.Small with { RetentionMaxBytes = 3 * (64 << 10), RetentionCheckInterval = TimeSpan.FromHours(1) });
        AppendReadTests.AppendRange(journal, 200);
        segment0 = JournalFiles.Segments(dir.Path)[0];
        return journal;
    }

    /// <summary>Fills past the limit and runs retention until segment 0 is deleted; returns the first retained offset.</summary>
    private static long DeleteSegment0(JournalLog journal, string segment0)
    {
        AppendReadTests.AppendRange(journal, 5000);
        RetentionTests.SealAll(journal);
        Eventually.True(
            () =>
            {
                journal.ApplyRetention();
                return !File.Exists(segment0);
            },
            "retention deletes segment 0");
        return journal.FirstOffset;
    }

    private static void AssertReadsOnFrom(JournalReader reader, long first)
    {
        var expected = first;
        while (reader.TryRead(out var r))
        {
            Assert.Equal(expected, r.Offset);
            Assert.True(r.Payload.SequenceEqual(AppendReadTests.PayloadFor(expected)), $"payload of offset {expected}");
            expected++;
        }

        Assert.Equal(5200, expected);
    }

    /// <summary>
    /// A reader opened in segment 0 that never reads (an embedded caller holding it, a subscription never fetched): the
    /// retention pass that deletes segment 0 releases its mapping; its first read is the first retained record, and the
    /// records it lost are counted.
    /// </summary>
    [Fact]
    public void A_reader_that_never_read_lets_go_of_its_deleted_segment_and_then_skips_to_the_first_retained_record()
    {
        using var dir = new TempDirectory();
        using var journal = Open(dir, out var segment0);
        using var reader = journal.OpenReader(ReadStart.FromOffset(100));

        var first = DeleteSegment0(journal, segment0);
        Assert.True(first > 200, $"first retained {first}");
        Eventually.True(() => DeletedMappings(segment0) == 0, $"the paused reader lets go of deleted segment 0 ({DeletedMappings(segment0)} mapping(s) left)", s_released);

        Assert.True(reader.TryRead(out var resumed));
        Assert.Equal(first, resumed.Offset);
        Assert.Equal(first - 100, reader.Skipped);
        reader.Dispose();
        AssertReadsOnFrom(journal.OpenReader(ReadStart.FromOffset(first)), first);
    }

    /// <summary>
    /// A tailing reader that read everything there was (its last read found nothing) and stopped: it holds no span, so
    /// retention releases its deleted segment; reading again, it reports the records written there after it stopped.
    /// </summary>
    [Fact]
    public void A_tailing_reader_that_found_nothing_lets_go_of_its_deleted_segment()
    {
        using var dir = new TempDirectory();
        using var journal = Open(dir, out var segment0);
        using var reader = journal.OpenReader(ReadStart.Beginning);
        for (var i = 0; i < 200; i++)
        {
            Assert.True(reader.TryRead(out var r), $"record {i}");
            Assert.Equal(i, r.Offset);
        }

        Assert.False(reader.TryRead(out _));

        var first = DeleteSegment0(journal, segment0);
        Eventually.True(() => DeletedMappings(segment0) == 0, $"the idle reader lets go of deleted segment 0 ({DeletedMappings(segment0)} mapping(s) left)", s_released);

        AssertReadsOnFrom(reader, first);
        Assert.Equal(first - 200, reader.Skipped);
    }

    /// <summary>
    /// A reader that still holds a record's spans when its segment is deleted keeps the mapping, and the spans stay
    /// readable; once it parks (<see cref="JournalReader.Park"/>, or a wait, which parks), the mapping goes, and the
    /// rest of the segment is lost to it: its next read is the first retained record, the gap counted.
    /// </summary>
    [Theory]
    [InlineData("Park")]
    [InlineData("WaitToRead")]
    public void A_reader_holding_a_record_keeps_its_deleted_segment_until_it_parks(string park)
    {
        using var dir = new TempDirectory();
        using var journal = Open(dir, out var segment0);
        using var reader = journal.OpenReader(ReadStart.FromOffset(100));
        Assert.True(reader.TryRead(out var held));
        Assert.Equal(100, held.Offset);

        var first = DeleteSegment0(journal, segment0);
        Assert.True(DeletedMappings(segment0) > 0, "the reader holding a record keeps the deleted segment mapped");
        Assert.True(held.Payload.SequenceEqual(AppendReadTests.PayloadFor(100)), "the held record is still readable");

        if (park == "Park")
        {
            reader.Park();
        }
        else
        {
            Assert.True(reader.WaitToRead(TimeSpan.Zero)); // record 101 is durable (in the deleted segment)
        }

        Assert.Equal(0, DeletedMappings(segment0)); // the reader's own thread released it, before returning
        reader.Park(); // parking twice changes nothing
        AssertReadsOnFrom(reader, first);
        Assert.Equal(first - 101, reader.Skipped);
    }

    /// <summary>
    /// A reader that is reading when retention deletes its segment keeps the mapping (its spans stay valid) and a pass
    /// never takes it from under it, but the reader releases it itself when it parks: the pass that ran meanwhile is
    /// not needed again.
    /// </summary>
    [Fact]
    public void A_reader_that_parks_after_the_retention_pass_releases_the_deleted_segment_itself()
    {
        using var dir = new TempDirectory();
        using var journal = Open(dir, out var segment0);
        using var reader = journal.OpenReader(ReadStart.Beginning);
        Assert.True(reader.TryRead(out _));

        var first = DeleteSegment0(journal, segment0);
        Assert.Equal(0, journal.ApplyRetention()); // nothing more to delete: no pass after this point helps
        Assert.True(DeletedMappings(segment0) > 0, "the reading reader keeps the deleted segment mapped");
        for (var i = 1; i < 150; i++)
        {
            Assert.True(reader.TryRead(out var r)); // reading on in the deleted segment, from the mapping
            Assert.Equal(i, r.Offset);
            Assert.True(r.Payload.SequenceEqual(AppendReadTests.PayloadFor(i)), $"payload of offset {i}");
        }

        reader.Park();
        Assert.Equal(0, DeletedMappings(segment0));
        AssertReadsOnFrom(reader, first);
        Assert.Equal(first - 150, reader.Skipped);
    }

    /// <summary>
    /// Retention passes racing a reader that reads and parks in turn: every record it gets is intact (never a span over
    /// an unmapped segment: that would be a crash or wrong bytes), and every gap is exactly what it reports.
    /// </summary>
    [Fact]
    public async Task Retention_racing_a_reader_that_parks_between_reads_never_breaks_it()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, AppendReadTests.Small with { RetentionMaxBytes = 2 * (64 << 10), RetentionCheckInterval = TimeSpan.FromHours(1) });
        const int Total = 30_000;
        using var stop = new CancellationTokenSource();
        var retention = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                journal.ApplyRetention();
                Thread.Sleep(1); // not synchronisation: leaves CPU for the flusher, which seals what retention may delete
            }
        });
        var read = Task.Run(() =>
        {
            using var reader = journal.OpenReader(ReadStart.Beginning);
            long last = -1, skipped = 0, batch = 0;
            while (last < Total - 1)
            {
                if (reader.TryRead(out var r))
                {
                    var gap = reader.Skipped - skipped;
                    skipped = reader.Skipped;
                    Assert.True(last < 0 || r.Offset == last + 1 + gap, $"gap after {last}: {r.Offset}, {gap} reported");
                    Assert.True(r.Payload.SequenceEqual(AppendReadTests.PayloadFor(r.Offset)), $"payload of offset {r.Offset}");
                    last = r.Offset;
                    if (++batch % 7 == 0)
                    {
                        reader.Park(); // a consumer out of credit, for a moment
                    }
                }
                else
                {
                    reader.WaitToRead(TimeSpan.FromMilliseconds(50));
                }
            }

            return skipped;
        });

        for (long i = 0; i < Total; i++)
        {
            Assert.True(journal.TryAppend(AppendReadTests.PayloadFor(i), out _));
            if (i % 50 == 0)
            {
                journal.Commit();
            }
        }

        journal.Commit();
        await Eventually.Completes(read);
        Eventually.True(() => journal.FirstOffset > 0, "retention deletes the segments the reader left");
        await stop.CancelAsync();
        await Eventually.Completes(retention);
    }
}
