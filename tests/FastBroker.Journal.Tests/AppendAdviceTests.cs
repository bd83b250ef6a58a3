using System.Globalization;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.Journal.Tests;

/// <summary>
/// The part of a segment still to be appended is advised MADV_RANDOM (no readahead), and a sealed segment gets
/// readahead back. Without the advice, a write fault on the fallocated, not yet written range read ahead, that is zeroed,
/// up to the disk's readahead window at once (8 MiB on the test machine: the writer or the pre-fault thread 10-15 ms in
/// one fault). Checked in the kernel's own view of the mapping, the VmFlags of /proc/self/smaps ("rr": random read).
/// </summary>
public class AppendAdviceTests(ITestOutputHelper output)
{
    private const int SegmentSize = 8 << 20;
    private const int RecordPayload = 4000;

    [Fact]
    public void A_new_segment_reads_no_ahead_until_it_is_sealed()
    {
        using var dir = new TempDirectory();
        var options = new JournalOptions { SegmentSize = SegmentSize, Durability = DurabilityPolicy.None, PrefaultSegments = true };
        using var journal = JournalLog.Open(dir.Path, options);
        Append(journal, 16);
        var first = journal.CurrentSegments[0];
        Assert.Contains("rr", FlagsAt(first.MappingAddress));
        Assert.Contains("rr", FlagsAt(first.MappingAddress + SegmentSize - Internal.Segment.PageSize));

        // Past the end of the first segment: it is closed, synced and sealed by the flusher, and reads ahead again.
        Append(journal, (SegmentSize / RecordPayload) + 16);
        Assert.True(journal.CurrentSegments.Length >= 2, "the journal rolled");
        Eventually.True(() => journal.CurrentSegments[0].IsSealed, "the flusher seals the first segment");
        Assert.DoesNotContain("rr", FlagsAt(first.MappingAddress));
        Assert.DoesNotContain("rr", FlagsAt(first.MappingAddress + SegmentSize - Internal.Segment.PageSize));
        Assert.False(first.AppendAdvised);

        // The one the writer went on in (the prepared spare, or one it created itself) is advised from its start.
        var active = journal.CurrentSegments[^1];
        Assert.Contains("rr", FlagsAt(active.MappingAddress));
    }

    [Fact]
    public void A_reopened_segment_reads_no_ahead_from_the_first_whole_huge_page_past_its_records()
    {
        using var dir = new TempDirectory();
        var options = new JournalOptions { SegmentSize = SegmentSize, Durability = DurabilityPolicy.None, PrefaultSegments = false };
        using (var journal = JournalLog.Open(dir.Path, options))
        {
            Append(journal, (3 << 20) / RecordPayload); // about 3 MiB: the records end inside the second huge page
        }

        using (var journal = JournalLog.Open(dir.Path, options))
        {
            var active = journal.CurrentSegments[^1];
            Assert.True(active.AppendAdvised);
            var hugePage = Internal.Segment.AllocationUnit;

            // Its records (and the rest of the huge page they end in) keep readahead, for readers catching up from disk;
            // from the next whole huge page on, where only appends go, none.
            output.WriteLine($"[0, 2 MiB): {FlagsAt(active.MappingAddress)}; [4 MiB, 8 MiB): {FlagsAt(active.MappingAddress + (2 * hugePage))}");
            Assert.DoesNotContain("rr", FlagsAt(active.MappingAddress));
            Assert.DoesNotContain("rr", FlagsAt(active.MappingAddress + hugePage));
            Assert.Contains("rr", FlagsAt(active.MappingAddress + (2 * hugePage)));
            Assert.Contains("rr", FlagsAt(active.MappingAddress + SegmentSize - Internal.Segment.PageSize));

            // And what was there reads back.
            using var reader = journal.OpenReader(ReadStart.FromOffset(0), verifyChecksums: true);
            long count = 0;
            while (reader.TryRead(out _))
            {
                count++;
            }

            Assert.Equal(journal.NextOffset, count);
        }
    }

    private static void Append(JournalLog journal, long count)
    {
        var payload = new byte[RecordPayload];
        for (long i = 0; i < count; i++)
        {
            payload[0] = (byte)i;
            Assert.True(journal.TryAppend(payload, out _));
            if (i % 64 == 63)
            {
                journal.Commit();
            }
        }

        journal.Commit();
    }

    /// <summary>The VmFlags of the mapping of this process that contains <paramref name="address"/>.</summary>
    internal static string[] FlagsAt(nint address)
    {
        var lines = File.ReadAllLines("/proc/self/smaps");
        var inside = false;
        foreach (var line in lines)
        {
            var dash = line.IndexOf('-', StringComparison.Ordinal);
            var space = line.IndexOf(' ', StringComparison.Ordinal);
            if (dash > 0 && space > dash && ulong.TryParse(line.AsSpan(0, dash), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var start)
                && ulong.TryParse(line.AsSpan(dash + 1, space - dash - 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var end))
            {
                inside = (ulong)address >= start && (ulong)address < end;
                continue;
            }

            if (inside && line.StartsWith("VmFlags:", StringComparison.Ordinal))
            {
                return line["VmFlags:".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            }
        }

        throw new InvalidOperationException($"no mapping at 0x{address:x} in /proc/self/smaps");
    }
}
