using System.Diagnostics;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.Journal.Tests;

/// <summary>
/// The range still to be appended takes huge (2 MiB) page-cache folios only while the journal writes fast, 4 KiB ones
/// otherwise. A huge folio is one zeroing of 2 MiB the pre-fault thread cannot split (~0.5-1 ms that displaces a
/// latency-sensitive thread once per 2 MiB: latency-100k p99 1.2-2.6 ms with them, 150-320 µs without), but populates
/// eight times faster, which a journal at hundreds of MB/s needs. Checked in the kernel's view of the mapping, the
/// VmFlags of /proc/self/smaps ("hg": MADV_HUGEPAGE, "nh": MADV_NOHUGEPAGE).
/// </summary>
public class FolioChoiceTests(ITestOutputHelper output)
{
    private const int SegmentSize = 128 << 20;
    private const int RecordPayload = 4000;
    private const int HugePage = Internal.Segment.AllocationUnit;

    [Theory]
    [InlineData(false, 40e6, 0, true)] // a burst at the threshold: huge at once
    [InlineData(false, 39e6, 0, false)]
    [InlineData(true, 39e6, 0, true)] // under it but over a quarter: stays huge
    [InlineData(true, 1e6, SlowLooksBeforeSmall - 1, true)] // slow, but not for long enough yet
    [InlineData(true, 1e6, SlowLooksBeforeSmall, false)]
    [InlineData(false, 1e6, 100, false)]
    public void The_choice_has_hysteresis(bool huge, double rate, int slowLooks, bool expected) =>
        Assert.Equal(expected, JournalLog.HugeFoliosNext(huge, rate, slowLooks, threshold: 40e6));

    private const int SlowLooksBeforeSmall = JournalLog.SlowLooksBeforeSmallFolios;

    [Fact]
    public void A_quiet_journal_appends_into_small_folios_and_a_fast_one_into_huge_ones_and_back()
    {
        using var dir = new TempDirectory();
        var options = new JournalOptions { SegmentSize = SegmentSize, Durability = DurabilityPolicy.None, PrefaultSegments = true };
        using var journal = JournalLog.Open(dir.Path, options);
        Append(journal, 16);
        var segment = journal.CurrentSegments[0];
        Assert.True(segment.HugeAligned, "the test needs a 2 MiB-aligned mapping");
        var end = segment.MappingAddress + SegmentSize - Internal.Segment.PageSize;

        // Quiet (no rate reaches the threshold): from the first whole huge page on, 4 KiB folios.
        journal.HugeFoliosFromBytesPerSecond = double.PositiveInfinity;
        AppendUntil(journal, () => Has(end, "nh") && Position(segment) >= 3 << 20, "the tail of a quiet journal is advised MADV_NOHUGEPAGE");
        Assert.DoesNotContain("hg", FlagsAt(end));
        Assert.False(segment.TailHuge);

        // Fast (every rate reaches it): huge folios from the next whole huge page past what is already pre-faulted.
        // Until the pre-fault thread has gone through one such page: on a loaded machine it (idle priority) may not
        // run for a while, and a range it has not pre-faulted goes back to 4 KiB folios when the journal is slow again.
        journal.HugeFoliosFromBytesPerSecond = 0;
        AppendUntil(journal, () => Has(end, "hg") && PrefaultedHuge(segment), "the tail of a fast journal is advised MADV_HUGEPAGE and pre-faulted so");
        Assert.True(segment.TailHuge);
        Assert.Contains("nh", FlagsAt(segment.MappingAddress + HugePage)); // pre-faulted while quiet: keeps its folios

        // Quiet again: back to 4 KiB folios, after a few slow looks.
        journal.HugeFoliosFromBytesPerSecond = double.PositiveInfinity;
        AppendUntil(journal, () => Has(end, "nh"), "the tail goes back to MADV_NOHUGEPAGE once the journal is slow again");
        Assert.False(segment.TailHuge);
        var huge = Flags(segment, "hg");
        output.WriteLine("huge pages advised MADV_HUGEPAGE: " + string.Concat(huge.Select(f => f ? 'H' : '.')));
        Assert.Contains(true, huge[2..]); // what was pre-faulted while fast (the first huge page is mapped so, and kept)

        // What was written through all three reads back.
        using var reader = journal.OpenReader(ReadStart.FromOffset(0), verifyChecksums: true);
        long count = 0;
        while (reader.TryRead(out _))
        {
            count++;
        }

        Assert.Equal(journal.NextOffset, count);
        Assert.Single(journal.CurrentSegments);
    }

    /// <summary>Whether some huge page of the segment has <paramref name="flag"/>, one entry per huge page.</summary>
    private static bool[] Flags(Internal.Segment segment, string flag)
    {
        var result = new bool[SegmentSize / HugePage];
        for (var i = 0; i < result.Length; i++)
        {
            result[i] = FlagsAt(segment.MappingAddress + (i * (nint)HugePage)).Contains(flag);
        }

        return result;
    }

    /// <summary>
    /// Whether a whole huge page past the first two is advised MADV_HUGEPAGE and already pre-faulted or written (the
    /// advice of what lies before the pre-fault thread's or the writer's position no longer changes).
    /// </summary>
    private static bool PrefaultedHuge(Internal.Segment segment)
    {
        var through = Math.Max(segment.PrefaultedTo, Position(segment)) / HugePage;
        for (var i = 2; i < through; i++)
        {
            if (Has(segment.MappingAddress + (i * (nint)HugePage), "hg"))
            {
                return true;
            }
        }

        return false;
    }

    private static int Position(Internal.Segment segment) => Internal.Segment.PositionOf(segment.Published);

    private static bool Has(nint address, string flag) => FlagsAt(address).Contains(flag);

    /// <summary>
    /// Appends at most 64 KiB per elapsed millisecond (the pre-fault thread measures the rate over 20 ms looks, so
    /// looks must pass while it writes), at most 16 MiB, then a record per 50 ms so the pre-fault thread still has a
    /// chunk to do after its next look; until <paramref name="condition"/> holds or a 60 s deadline passes.
    /// </summary>
    private static void AppendUntil(JournalLog journal, Func<bool> condition, string because)
    {
        var clock = Stopwatch.StartNew();
        long appended = 0;
        var payload = new byte[RecordPayload];
        while (!condition())
        {
            if (clock.Elapsed > Eventually.DefaultTimeout)
            {
                throw new TimeoutException($"not within {Eventually.DefaultTimeout.TotalSeconds} s: {because}");
            }

            var ms = (long)clock.Elapsed.TotalMilliseconds;
            var allowed = Math.Min(16L << 20, ms * (64 << 10)) + (ms / 50 * RecordPayload);
            if (appended + RecordPayload <= allowed)
            {
                Assert.True(journal.TryAppend(payload, out _));
                journal.Commit();
                appended += RecordPayload;
            }
            else
            {
                // Pacing the writer, not waiting for a result. A sleep, not a yield: a thread yielding in a loop stays
                // runnable and keeps the idle-priority pre-fault thread off a loaded machine's CPUs.
                Thread.Sleep(1);
            }
        }
    }

    private static void Append(JournalLog journal, long count)
    {
        var payload = new byte[RecordPayload];
        for (long i = 0; i < count; i++)
        {
            Assert.True(journal.TryAppend(payload, out _));
        }

        journal.Commit();
    }

    private static string[] FlagsAt(nint address) => AppendAdviceTests.FlagsAt(address);
}
