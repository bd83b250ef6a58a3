using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

public class RetentionTests
{
    private static JournalOptions BySize(long bytes) => AppendReadTests.Small with { RetentionMaxBytes = bytes, RetentionCheckInterval = TimeSpan.FromHours(1) };

    /// <summary>Only sealed segments are deleted; the flusher seals closed ones and then writes their index file.</summary>
    internal static void SealAll(JournalLog journal) =>
        Eventually.True(() => Directory.GetFiles(journal.Directory, "*.idx").Length >= journal.SegmentCount - 1, "closed segments get sealed by the flusher");

    /// <summary>
    /// Repeats a retention or truncation pass until it has deleted something; returns how many it deleted. A pass stops
    /// at a segment someone still holds, such as the pre-fault thread (see <see cref="RetainDownTo"/>).
    /// </summary>
    internal static int DeletesEventually(Func<int> pass, string because)
    {
        var deleted = 0;
        Eventually.True(() => (deleted += pass()) > 0, because);
        return deleted;
    }

    /// <summary>
    /// Applies retention until <paramref name="segments"/> remain; returns how many it deleted. A pass stops at a
    /// segment someone still holds, and the journal's pre-fault thread briefly holds the segment the writer has just
    /// left (it was pre-faulting it): a later pass deletes it, as it would a segment a reader let go of.
    /// </summary>
    private static int RetainDownTo(JournalLog journal, int segments)
    {
        var deleted = 0;
        Eventually.True(
            () =>
            {
                deleted += journal.ApplyRetention();
                return journal.SegmentCount <= segments;
            },
            $"retention leaves {segments} segment(s)");
        Assert.Equal(segments, journal.SegmentCount);
        return deleted;
    }

    [Fact]
    public void Size_retention_deletes_the_oldest_whole_sealed_segments()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, BySize(3 * (64 << 10)));
        AppendReadTests.AppendRange(journal, 5000);
        SealAll(journal);
        var before = journal.SegmentCount;
        Assert.True(before > 3);
        RetainDownTo(journal, 3);
        Assert.True(journal.FirstOffset > 0);
        Assert.Equal(journal.SegmentCount, Directory.GetFiles(dir.Path, "*.seg").Length);
        Assert.Equal(5000, AppendReadTests.ReadAllChecked(journal, journal.FirstOffset));
        using var reader = journal.OpenReader(ReadStart.Beginning);
        Assert.Equal(journal.FirstOffset, reader.NextOffset);
    }

    [Fact]
    public void Age_retention_deletes_segments_whose_newest_record_is_older_than_the_limit()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, AppendReadTests.Small with { RetentionMaxAge = TimeSpan.FromHours(1), RetentionCheckInterval = TimeSpan.FromHours(1) });
        const long T0 = 1_700_000_000_000;
        for (long i = 0; i < 3000; i++)
        {
            Assert.True(journal.TryAppend(default, default, AppendReadTests.PayloadFor(i), RecordFlags.None, T0 + (i * 10_000), out _)); // every 10 s
        }

        journal.Commit();
        SealAll(journal);
        var now = DateTimeOffset.FromUnixTimeMilliseconds(T0 + (3000 * 10_000L));
        Assert.True(journal.ApplyRetention(now) > 0);

        // Cutoff = now - 1 h = record 2640's time. Every deleted segment was wholly older; the first kept one is not.
        using var reader = journal.OpenReader(ReadStart.Beginning);
        Assert.True(reader.TryRead(out var first));
        Assert.InRange(first.Offset, 1, 2640);
        Assert.Equal(journal.FirstOffset, first.Offset);
        Assert.Equal(3000, AppendReadTests.ReadAllChecked(journal, first.Offset));
        Assert.Equal(0, journal.ApplyRetention(now));
    }

    /// <summary>
    /// Limits win over a reader's position (Kafka, JetStream limits retention): a reader that stopped does not stop
    /// retention. Its segment is deleted under it, yet one that still holds a record (it has not parked) reads that
    /// segment to its end from the mapping, then continues at the first retained record and counts what it never saw.
    /// Either dispose order releases the deleted segment. (A parked reader: <see cref="PausedReaderRetentionTests"/>.)
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Retention_deletes_segments_under_a_paused_reader_which_finishes_its_segment_then_skips_to_the_tail(bool journalFirst)
    {
        using var dir = new TempDirectory();
        var journal = JournalLog.Open(dir.Path, BySize(3 * (64 << 10)));
        AppendReadTests.AppendRange(journal, 200);
        var reader = journal.OpenReader(ReadStart.Beginning);
        var paused = journal.OpenReader(ReadStart.FromOffset(100));
        Assert.True(reader.TryRead(out var r0));
        Assert.Equal(0, r0.Offset);
        Assert.True(paused.TryRead(out var p0));
        Assert.Equal(100, p0.Offset);

        AppendReadTests.AppendRange(journal, 5000);
        SealAll(journal);
        var files = Directory.GetFiles(dir.Path, "*.seg").Order(StringComparer.Ordinal).ToArray();
        var secondBase = long.Parse(Path.GetFileNameWithoutExtension(files[1]), System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(files.Length > 4, $"{files.Length} segments");

        // One pass, down to the limit, although both readers sit in segment 0.
        Assert.Equal(files.Length - 3, journal.ApplyRetention());
        Assert.Equal(3, journal.SegmentCount);
        Assert.Equal(3, Directory.GetFiles(dir.Path, "*.seg").Length);
        Assert.False(File.Exists(files[0]), "the paused readers' segment file is unlinked");
        var first = journal.FirstOffset;
        Assert.True(first > secondBase, $"first retained {first}");

        // The rest of segment 0 from the mapping, then a jump to the first retained record, counted.
        var expected = 1L;
        while (expected < secondBase)
        {
            Assert.True(reader.TryRead(out var r), $"offset {expected} of the deleted segment");
            Assert.Equal(expected, r.Offset);
            Assert.True(r.Payload.SequenceEqual(AppendReadTests.PayloadFor(expected)), $"payload of offset {expected}");
            expected++;
        }

        Assert.Equal(0, reader.Skipped);
        Assert.True(reader.TryRead(out var resumed));
        Assert.Equal(first, resumed.Offset);
        Assert.True(resumed.Payload.SequenceEqual(AppendReadTests.PayloadFor(first)));
        Assert.Equal(first - secondBase, reader.Skipped);
        expected = first + 1;
        while (reader.TryRead(out var r))
        {
            Assert.Equal(expected, r.Offset);
            Assert.True(r.Payload.SequenceEqual(AppendReadTests.PayloadFor(expected)), $"payload of offset {expected}");
            expected++;
        }

        Assert.Equal(5200, expected);
        Assert.Equal(first - secondBase, reader.Skipped);
        reader.Dispose();

        // The other reader still holds the deleted segment 0: it reads on, also once the journal is gone.
        if (journalFirst)
        {
            journal.Dispose();
        }

        Assert.True(paused.TryRead(out var p1));
        Assert.Equal(101, p1.Offset);
        Assert.True(p1.Payload.SequenceEqual(AppendReadTests.PayloadFor(101)));
        paused.Dispose();
        paused.Dispose();
        journal.Dispose();
    }

    /// <summary>A reader opened with pinRetention (the replication stream) is a floor: nothing it has not read goes.</summary>
    [Fact]
    public void Retention_never_deletes_what_a_pinning_reader_has_not_read()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, BySize(64 << 10));
        AppendReadTests.AppendRange(journal, 5000);
        SealAll(journal);
        var reader = journal.OpenReader(ReadStart.FromOffset(10), pinRetention: true);
        Assert.True(reader.PinsRetention);
        for (var pass = 0; pass < 3; pass++)
        {
            Assert.Equal(0, journal.ApplyRetention());
        }

        // Read into the third segment: the two below it may go, nothing from the reader's position on.
        var third = long.Parse(Path.GetFileNameWithoutExtension(Directory.GetFiles(dir.Path, "*.seg").Order(StringComparer.Ordinal).ElementAt(2)), System.Globalization.CultureInfo.InvariantCulture);
        var expected = 10L;
        while (expected <= third)
        {
            Assert.True(reader.TryRead(out var r));
            Assert.Equal(expected++, r.Offset);
        }

        Assert.Equal(2, journal.ApplyRetention());
        Assert.Equal(third, journal.FirstOffset);
        Assert.Equal(0, journal.ApplyRetention());
        Assert.Equal(0, journal.TruncateBefore(5000));
        Assert.Equal(third, journal.FirstOffset);
        while (reader.TryRead(out var r))
        {
            Assert.Equal(expected++, r.Offset);
        }

        Assert.Equal(5000, expected);
        Assert.Equal(0, reader.Skipped);
        reader.Dispose();
        Assert.True(RetainDownTo(journal, 1) > 0);
    }

    private const int PinSegmentBytes = 64 << 10;

    /// <summary>Three sealed segments of <see cref="PinSegmentBytes"/>, and a reader pinning retention at offset 10.</summary>
    private static JournalReader PinAtOffset10OfThreeSegments(JournalLog journal)
    {
        AppendUntilSegments(journal, 3);
        SealAll(journal);
        return journal.OpenReader(ReadStart.FromOffset(10), pinRetention: true);
    }

    /// <summary>
    /// A pinning reader with a bound (the replicator's, ReplicationOptions.MaxRetentionHoldBytes) holds retention back
    /// by at most that many bytes of segments the limits would delete: within it, nothing it has not read goes; past it,
    /// retention passes it as it passes any reader, and the reader (parked: it has not read yet) lets go of its deleted
    /// segment, then skips to the first retained record and counts the gap.
    /// </summary>
    [Fact]
    public void A_bounded_pinning_reader_holds_retention_up_to_its_limit_then_is_passed()
    {
        const int Segment = PinSegmentBytes;
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, BySize(Segment));
        using var reader = PinAtOffset10OfThreeSegments(journal);
        reader.MaxRetentionHoldBytes = 5 * Segment / 2;

        // Two sealed segments over the limit, the reader in the first: it holds 128 KiB back, within its 160 KiB.
        for (var pass = 0; pass < 3; pass++)
        {
            Assert.Equal(0, journal.ApplyRetention());
            Assert.Equal(0, journal.TruncateBefore(long.MaxValue));
        }

        Assert.Equal(0, journal.FirstOffset);
        Assert.Equal(0, reader.PinOverrides);

        // A third one: keeping them would hold 192 KiB back. Retention deletes as if the reader did not pin.
        AppendUntilSegments(journal, 4);
        SealAll(journal);
        var second = SegmentBases(dir.Path)[1];
        Assert.True(RetainDownTo(journal, 1) >= 3);
        var first = journal.FirstOffset;
        Assert.True(first > second, $"first retained {first}, the reader's segment ends at {second}");
        Assert.True(reader.PinOverrides >= 1, $"pin overrides: {reader.PinOverrides}");
        Assert.Equal(reader.PinOverrides, journal.PinOverrides);

        // Parked in a deleted segment, it let go of it in the pass: it continues at the first retained record.
        var expected = first;
        while (reader.TryRead(out var r))
        {
            Assert.Equal(expected, r.Offset);
            Assert.True(r.Payload.SequenceEqual(AppendReadTests.PayloadFor(expected)), $"payload of offset {expected}");
            expected++;
        }

        Assert.Equal(journal.NextOffset, expected);
        Assert.Equal(first - 10, reader.Skipped);
    }

    /// <summary>Without a bound (the default) a pinning reader holds retention back however much would go.</summary>
    [Fact]
    public void An_unbounded_pinning_reader_holds_retention_however_much_it_holds_back()
    {
        const int Segment = PinSegmentBytes;
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, BySize(Segment));
        using var reader = PinAtOffset10OfThreeSegments(journal);
        Assert.Equal(long.MaxValue, reader.MaxRetentionHoldBytes);
        AppendUntilSegments(journal, 8);
        SealAll(journal);
        for (var pass = 0; pass < 3; pass++)
        {
            Assert.Equal(0, journal.ApplyRetention());
            Assert.Equal(0, journal.TruncateBefore(long.MaxValue));
        }

        Assert.Equal(0, journal.FirstOffset);
        var expected = 10L;
        while (reader.TryRead(out var r))
        {
            Assert.Equal(expected++, r.Offset);
        }

        Assert.Equal(journal.NextOffset, expected);
        Assert.Equal(0, reader.Skipped);
        Assert.Equal(0, reader.PinOverrides);
        Assert.Equal(0, journal.PinOverrides);
        Assert.Throws<ArgumentOutOfRangeException>(() => reader.MaxRetentionHoldBytes = -1);
    }

    /// <summary>Appends one record at a time until the journal has <paramref name="segments"/> segment files.</summary>
    private static void AppendUntilSegments(JournalLog journal, int segments)
    {
        for (var i = 0; journal.SegmentCount < segments; i++)
        {
            Assert.True(i < 100_000, $"{i} records and still {journal.SegmentCount} segments");
            AppendReadTests.AppendRange(journal, 1);
        }
    }

    private static long[] SegmentBases(string directory) =>
        [.. Directory.GetFiles(directory, "*.seg").Select(f => long.Parse(Path.GetFileNameWithoutExtension(f), System.Globalization.CultureInfo.InvariantCulture)).Order()];

    [Fact]
    public void Retention_respects_the_minimum_retained_offset()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, BySize(64 << 10));
        AppendReadTests.AppendRange(journal, 5000);
        SealAll(journal);
        journal.MinRetainedOffset = 1;
        Assert.Equal(0, journal.ApplyRetention());
        journal.MinRetainedOffset = 2500;
        DeletesEventually(journal.ApplyRetention, "retention deletes the segments wholly below the minimum retained offset");
        Assert.True(journal.FirstOffset > 0);
        Assert.True(journal.FirstOffset <= 2500, $"first offset {journal.FirstOffset}");
    }

    /// <summary>
    /// The broker's floor callback can throw (its state changing under it, or being torn down at shutdown). On the
    /// flusher thread that exception went unhandled and ended the process; now the floor is unknown and the pass
    /// deletes nothing, the journal goes on taking and flushing records, and retention resumes once it answers.
    /// </summary>
    [Fact]
    public void A_retention_floor_that_throws_deletes_nothing_and_the_flusher_goes_on()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, AppendReadTests.Small with { Durability = DurabilityPolicy.GroupCommit, RetentionMaxBytes = 3 * (64 << 10), RetentionCheckInterval = TimeSpan.FromMilliseconds(1) });
        var calls = 0;
        journal.RetentionFloor = () =>
        {
            Interlocked.Increment(ref calls);
            throw new InvalidOperationException("Collection was modified; enumeration operation may not execute.");
        };
        AppendReadTests.AppendRange(journal, 5000);
        SealAll(journal);
        var segments = journal.SegmentCount;
        Assert.True(segments > 3, $"{segments} segments");
        Eventually.True(() => Volatile.Read(ref calls) >= 3, "the flusher's retention passes keep asking the throwing floor");
        Assert.Equal(0, journal.ApplyRetention());
        Assert.Equal(0, journal.TruncateBefore(4000));
        Assert.Equal(0, journal.FirstOffset);
        Assert.Equal(segments, Directory.GetFiles(dir.Path, "*.seg").Length);

        Assert.True(journal.TryAppend(AppendReadTests.PayloadFor(5000), out var offset));
        Assert.Equal(5000, offset);
        Assert.True(journal.WaitForDurable(offset, Eventually.DefaultTimeout), "the flusher still syncs");

        journal.RetentionFloor = () => long.MaxValue;
        Eventually.True(() => journal.SegmentCount <= 3, "the flusher's retention deletes once the floor answers");
        Assert.True(journal.FirstOffset > 0);
        Assert.Equal(5001, AppendReadTests.ReadAllChecked(journal, journal.FirstOffset));
    }

    /// <summary>A failing floor callback is logged once per cause, and once when it answers again; each failing pass is counted.</summary>
    [Fact]
    public void A_failing_retention_floor_is_logged_once_per_cause_and_counted()
    {
        using var dir = new TempDirectory();
        var lines = new List<string>();
        using var journal = JournalLog.Open(dir.Path, BySize(64 << 10) with
        {
            Log = line =>
            {
                lock (lines)
                {
                    lines.Add(line);
                }
            },
        });
        AppendReadTests.AppendRange(journal, 5000);
        SealAll(journal);
        Exception cause = new InvalidOperationException("first cause");
        journal.RetentionFloor = () => throw cause;
        Assert.Equal(0, journal.ApplyRetention());
        Assert.Equal(0, journal.ApplyRetention());
        cause = new KeyNotFoundException("second cause");
        Assert.Equal(0, journal.TruncateBefore(4000));
        Assert.Equal(3, journal.RetentionFloorFailures);
        journal.RetentionFloor = () => long.MaxValue;
        DeletesEventually(journal.ApplyRetention, "retention deletes once the floor answers");
        Assert.Equal(3, journal.RetentionFloorFailures);
        lock (lines)
        {
            Assert.Equal(3, lines.Count);
            Assert.Contains("InvalidOperationException: first cause", lines[0], StringComparison.Ordinal);
            Assert.Contains("KeyNotFoundException: second cause", lines[1], StringComparison.Ordinal);
            Assert.Contains("answers again", lines[2], StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Explicit_truncation_deletes_segments_wholly_below_the_offset()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, AppendReadTests.Small);
        AppendReadTests.AppendRange(journal, 5000);
        SealAll(journal);
        DeletesEventually(() => journal.TruncateBefore(2000), "truncation deletes the segments wholly below 2000");
        Assert.True(journal.FirstOffset <= 2000);
        Assert.Equal(5000, AppendReadTests.ReadAllChecked(journal, 2000));
    }

    [Fact]
    public async Task Retention_running_while_readers_are_mid_segment_does_not_break_them()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, BySize(2 * (64 << 10)) with { Durability = DurabilityPolicy.None });
        const int Total = 30_000;
        using var stop = new CancellationTokenSource();
        var deleted = 0;
        var retention = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                Interlocked.Add(ref deleted, journal.ApplyRetention());
                Thread.Sleep(1); // not synchronisation: leaves CPU for the flusher, which seals what retention may delete
            }
        });
        var readers = Enumerable.Range(0, 2).Select(_ => Task.Run(() =>
        {
            using var reader = journal.OpenReader(ReadStart.Beginning);
            long seen = 0;
            long last = -1;
            long skipped = 0;
            while (last < Total - 1)
            {
                if (reader.TryRead(out var r))
                {
                    // A reader that falls behind retention may skip ahead, but every gap is exactly what it reports.
                    var gap = reader.Skipped - skipped;
                    skipped = reader.Skipped;
                    Assert.True(last < 0 || r.Offset == last + 1 + gap, $"gap after {last}: {r.Offset}, {gap} reported");
                    Assert.True(r.Payload.SequenceEqual(AppendReadTests.PayloadFor(r.Offset)));
                    last = r.Offset;
                    seen++;
                }
                else
                {
                    reader.WaitToRead(TimeSpan.FromMilliseconds(50));
                }
            }

            return seen;
        })).ToArray();

        for (long i = 0; i < Total; i++)
        {
            Assert.True(journal.TryAppend(AppendReadTests.PayloadFor(i), out _));
            if (i % 50 == 0)
            {
                journal.Commit();
            }
        }

        journal.Commit();
        var counts = await Task.WhenAll(readers).WaitAsync(Eventually.DefaultTimeout);
        Eventually.True(() => Volatile.Read(ref deleted) > 0, "retention deletes the segments the readers left");
        await stop.CancelAsync();
        await Eventually.Completes(retention);
        Assert.All(counts, c => Assert.True(c > 0));
    }
}
