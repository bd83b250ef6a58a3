using System.Runtime.CompilerServices;
using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

/// <summary>
/// A reader dropped without <see cref="JournalReader.Dispose"/> (an embedded caller that forgets it, a session ended by
/// an exception path) is let go of once the garbage collector finds it unreachable: the journal's lists hold readers
/// weakly, and a collected reader's finalizer gives back its segment (so a deleted segment's mapping goes) and its
/// retention pin. A reader still referenced is not touched.
/// </summary>
public class AbandonedReaderTests
{
    /// <summary>Long enough for a loaded machine; on failure the readers are still there at the end of it.</summary>
    private static readonly TimeSpan s_collected = TimeSpan.FromSeconds(20);

    private static JournalLog Open(TempDirectory dir, out string segment0)
    {
        var journal = JournalLog.Open(dir.Path, AppendReadTests.Small with { RetentionMaxBytes = 3 * (64 << 10), RetentionCheckInterval = TimeSpan.FromHours(1) });
        AppendReadTests.AppendRange(journal, 200);
        segment0 = JournalFiles.Segments(dir.Path)[0];
        return journal;
    }

    /// <summary>
    /// Opens <paramref name="count"/> readers in segment 0 and drops them undisposed; with <paramref name="read"/> each
    /// reads one record first, so it is not parked and holds segment 0 as a reader mid-read does. Not inlined: no
    /// reference to a reader outlives the call, except in <paramref name="held"/> (never disposed either): a test counts
    /// the readers registered before it lets them go, since any GC (another test's <c>GC.Collect</c> in this process)
    /// may collect a dropped one at once (the journal holds them weakly).
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Abandon(JournalLog journal, int count, bool read, bool pin = false, List<JournalReader>? held = null)
    {
        for (var i = 0; i < count; i++)
        {
            var reader = journal.OpenReader(ReadStart.FromOffset(i % 200), pinRetention: pin);
            held?.Add(reader);
            if (read)
            {
                Assert.True(reader.TryRead(out var record));
                Assert.Equal(i % 200, record.Offset);
            }
        }
    }

    /// <summary>Collects and runs finalizers, then asks <paramref name="done"/>, until it holds or the deadline passes.</summary>
    private static void CollectUntil(Func<bool> done, Func<string> because) =>
        Eventually.True(
            () =>
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                GC.Collect();
                return done();
            },
            because(),
            s_collected);

    [Fact]
    public void Readers_dropped_undisposed_leave_the_journal_and_release_a_deleted_segment_when_collected()
    {
        using var dir = new TempDirectory();
        using var journal = Open(dir, out var segment0);
        using var kept = journal.OpenReader(ReadStart.Beginning); // referenced (not disposed until the end): untouched

        var held = new List<JournalReader>();
        Abandon(journal, 500, read: true, held: held);
        Abandon(journal, 500, read: false, held: held);
        Assert.Equal(1001, journal.OpenReaderCount);
        held.Clear(); // dropped undisposed: nothing references them now

        AppendReadTests.AppendRange(journal, 5000);
        RetentionTests.SealAll(journal);
        Eventually.True(
            () =>
            {
                journal.ApplyRetention();
                return !File.Exists(segment0);
            },
            "retention deletes segment 0");

        CollectUntil(
            () => journal.OpenReaderCount == 1 && PausedReaderRetentionTests.DeletedMappings(segment0) == 0,
            () => $"the dropped readers leave the journal ({journal.OpenReaderCount} open) and their mappings of deleted segment 0 go ({PausedReaderRetentionTests.DeletedMappings(segment0)} left)");

        // The referenced reader is still registered and reads on, counting what retention took from it.
        Assert.True(kept.TryRead(out var next));
        Assert.Equal(journal.FirstOffset, next.Offset);
        Assert.Equal(journal.FirstOffset, kept.Skipped);
    }

    [Fact]
    public void Pinning_readers_dropped_undisposed_stop_holding_retention_back_when_collected()
    {
        using var dir = new TempDirectory();
        using var journal = Open(dir, out var segment0);
        var held = new List<JournalReader>();
        Abandon(journal, 100, read: true, pin: true, held: held);
        Abandon(journal, 100, read: false, pin: true, held: held);
        Assert.Equal(200, journal.PinningReaderCount);
        held.Clear(); // dropped undisposed: nothing references them now

        AppendReadTests.AppendRange(journal, 5000);
        RetentionTests.SealAll(journal);
        CollectUntil(
            () =>
            {
                journal.ApplyRetention();
                return !File.Exists(segment0) && journal.PinningReaderCount == 0 && journal.OpenReaderCount == 0;
            },
            () => $"retention deletes segment 0 once the dropped pinning readers are collected ({journal.PinningReaderCount} pinning, {journal.OpenReaderCount} open, segment 0 {(File.Exists(segment0) ? "kept" : "deleted")})");
        Eventually.True(() => PausedReaderRetentionTests.DeletedMappings(segment0) == 0, "no mapping of deleted segment 0 is left", s_collected);
        Assert.True(journal.SegmentCount <= 4, $"{journal.SegmentCount} segments retained");
    }

    [Fact]
    public void A_referenced_pinning_reader_still_holds_retention_across_collections()
    {
        using var dir = new TempDirectory();
        using var journal = Open(dir, out var segment0);
        var pinned = journal.OpenReader(ReadStart.FromOffset(10), pinRetention: true);
        Abandon(journal, 100, read: false, pin: true);
        AppendReadTests.AppendRange(journal, 5000);
        RetentionTests.SealAll(journal);

        CollectUntil(
            () =>
            {
                journal.ApplyRetention();
                return journal.PinningReaderCount == 1;
            },
            () => $"the dropped pinning readers are collected ({journal.PinningReaderCount} pinning)");
        Assert.True(File.Exists(segment0), "the referenced reader's pin keeps segment 0");
        Assert.True(pinned.TryRead(out var record));
        Assert.Equal(10, record.Offset);

        pinned.Dispose();
        Assert.Equal(0, journal.PinningReaderCount);
        RetentionTests.DeletesEventually(journal.ApplyRetention, "retention deletes once the pin is disposed");
        Assert.False(File.Exists(segment0));
    }
}
