using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.Journal.Tests;

/// <summary>
/// A segment gets disk blocks and pre-faulted pages a window ahead of the writer, not all at creation: a broker
/// with many quiet topics must not hold two full segments of disk and dirty page cache per topic. Each test mounts
/// its own tmpfs, so "used" is exactly what the journal allocated.
/// </summary>
public class SegmentAllocationTests(ITestOutputHelper output)
{
    private const int SegmentSize = 64 << 20;
    private const int RecordPayload = 16 << 10;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_small_disk_holds_a_big_segment_until_it_is_really_full_then_refuses_and_keeps_every_acknowledged_record(bool prefault)
    {
        WithTmpfs("6m", fs =>
        {
            var journalDir = Path.Combine(fs.Path, "journal");
            var options = new JournalOptions { SegmentSize = SegmentSize, Durability = DurabilityPolicy.GroupCommit, PrefaultSegments = prefault };
            long acknowledged;
            using (var journal = JournalLog.Open(journalDir, options)) // a 64 MiB segment on a 6 MiB disk
            {
                JournalFullException? full = null;
                for (var i = 0; i < 1000 && full is null; i++)
                {
                    try
                    {
                        Assert.True(journal.TryAppend(PayloadFor(journal.NextOffset), out var offset));
                        journal.Commit();
                        Assert.True(journal.WaitForDurable(offset, Eventually.DefaultTimeout));
                    }
                    catch (JournalFullException e)
                    {
                        full = e;
                    }
                }

                Assert.NotNull(full);
                output.WriteLine(full.Message);
                Assert.Equal(JournalErrorCode.DiskFull, full.ErrorCode);
                acknowledged = journal.NextOffset;

                // Most of the disk held records before the refusal (no whole-segment reservation, no spare).
                Assert.True(acknowledged * RecordPayload > 3 << 20, $"{acknowledged} records of {RecordPayload} bytes before the disk was full");
                Assert.True(File.Exists(full.SegmentPath), "the refusal came inside the active segment");
                Assert.Throws<JournalFullException>(() => journal.TryAppend(PayloadFor(journal.NextOffset), out _));
                Assert.Equal(acknowledged, journal.NextOffset);
                Assert.Equal(acknowledged, ReadAllChecked(journal));
            }

            using (var journal = JournalLog.Open(journalDir, options))
            {
                Assert.True(journal.Recovery.IsClean, journal.Recovery.ToString());
                Assert.Equal(acknowledged, journal.NextOffset);
                Assert.Equal(acknowledged, ReadAllChecked(journal));
            }
        });
    }

    [Fact]
    public void A_quiet_journal_holds_a_window_of_disk_and_prepares_the_next_segment_only_near_the_end_of_this_one()
    {
        WithTmpfs("160m", fs =>
        {
            var journalDir = Path.Combine(fs.Path, "journal");
            var options = new JournalOptions { SegmentSize = SegmentSize, Durability = DurabilityPolicy.None, PrefaultSegments = true };
            using var journal = JournalLog.Open(journalDir, options);
            Append(journal, 1);
            Eventually.True(() => journal.PrefaultIdle, "the pre-fault thread finishes its window");
            var used = fs.Used;
            output.WriteLine($"quiet: {used >> 10} KiB used");

            // One allocation unit (the minimum window ahead of one record fits in it); a little slack for the rate
            // estimate, which may see the record as a burst.
            Assert.True(used <= 2 * Internal.Segment.AllocationUnit, $"a quiet 64 MiB segment uses {used} bytes of disk");
            Assert.Empty(Directory.GetFiles(journalDir, "spare-*.prep"));

            // Near the end of the segment the next one is prepared ahead of the roll, with its first window.
            Append(journal, (SegmentSize - JournalLog.MinPrefaultWindow) / RecordPayload);
            Eventually.True(() => journal.PrefaultIdle && Directory.GetFiles(journalDir, "spare-*.prep").Length == 1, "a spare segment is prepared near the end");
            var segments = Directory.GetFiles(journalDir, "*.seg").Length;
            Append(journal, (JournalLog.MinPrefaultWindow / RecordPayload) + 1);
            Assert.Equal(segments + 1, Directory.GetFiles(journalDir, "*.seg").Length);
            Assert.Equal(journal.NextOffset, ReadAllChecked(journal));
        });
    }

    /// <summary>
    /// Segments are mapped with MADV_HUGEPAGE; with large page-cache folios (ext4 on Linux 6.16+) a write fault dirties
    /// a whole folio of up to 2 MiB. Pre-faulting up to an odd MiB then reserved the rest of that folio by delayed
    /// allocation, past the allocated end: on a full disk that fault is a SIGBUS. On the test machine's ext4 /tmp.
    /// </summary>
    [Fact]
    public void Pre_faulted_pages_never_reach_past_the_allocated_blocks()
    {
        using var dir = new TempDirectory();
        var path = dir.Combine("blank.seg");
        var segment = Internal.Segment.CreateBlank(path, SegmentSize, 4);
        try
        {
            // What the pre-fault thread does for a window ending at an odd MiB: allocate to there, then populate.
            for (var mib = 1; mib < 12; mib += 2)
            {
                segment.AllocateTo(mib << 20);
                Assert.True(segment.AllocatedTo >= mib << 20);
                Assert.True(segment.Prefault((mib - 1) << 20, mib << 20));
                var extents = Extents(path);
                var end = extents.Count == 0 ? 0 : extents.Max(e => e.End);
                var blocks = extents.Sum(e => e.End - e.Start);
                output.WriteLine($"populated to {mib} MiB: {blocks >> 10} KiB in {extents.Count} extents ending at {end >> 10} KiB (st_blocks {AllocatedBytes(path) >> 10} KiB), allocated end {segment.AllocatedTo >> 10} KiB");
                Assert.True(end <= segment.AllocatedTo, $"blocks (written, unwritten or delayed) up to {end}, but only {segment.AllocatedTo} allocated");
                Assert.True(blocks <= segment.AllocatedTo, $"{blocks} bytes of blocks, but only {segment.AllocatedTo} allocated");
            }
        }
        finally
        {
            segment.ForceUnmap();
        }
    }

    /// <summary>
    /// Without native fallocate (ext3-style inodes, NFSv3) glibc's posix_fallocate writes a zero byte per block whose
    /// first byte reads zero, racing the writer's stores into a range another thread already allocated; there the
    /// journal allocates each segment whole at creation instead, and everything reads back.
    /// </summary>
    [Fact]
    public void Without_native_fallocate_segments_are_allocated_whole_and_every_record_reads_back()
    {
        using var dir = new TempDirectory();
        using var fs = TestMount.TryMountExt4(dir.Combine("noext"), 160, "^extent,^64bit", out var why);
        if (fs is null)
        {
            output.WriteLine($"SKIPPED: cannot loop-mount an ext4 image without extents ({why}); this test needs root.");
            return;
        }

        var journalDir = Path.Combine(fs.Path, "journal");
        var options = new JournalOptions { SegmentSize = 16 << 20, Durability = DurabilityPolicy.None, PrefaultSegments = true };
        long written;
        using (var journal = JournalLog.Open(journalDir, options))
        {
            var first = Directory.GetFiles(journalDir, "*.seg").Single();
            Assert.True(Extents(first).Sum(e => e.End - e.Start) >= 16 << 20, "the first segment is allocated whole");
            Append(journal, (40 << 20) / RecordPayload); // across three segments
            written = journal.NextOffset;
            Assert.Equal(written, ReadAllChecked(journal));
        }

        using (var journal = JournalLog.Open(journalDir, options))
        {
            Assert.True(journal.Recovery.IsClean, journal.Recovery.ToString());
            Assert.Equal(written, ReadAllChecked(journal));
        }
    }

    [Theory]
    [InlineData(100_000L, 1_000_000_000L, 1 << 20)] // 100 KB/s: the minimum window
    [InlineData(3_000_000L, 1_000_000_000L, 4 << 20)] // 3 MB/s (20k msg/s): 3 MB in 1 s, rounded up to a power of two
    [InlineData(15_000_000L, 1_000_000_000L, 16 << 20)] // 15 MB/s (100k msg/s): 15 MB in 1 s
    [InlineData(100_000_000L, 1_000_000_000L, 64 << 20)] // 100 MB/s: the whole segment
    public void The_prefault_window_covers_1_s_of_writing_between_1_MiB_and_the_segment(long bytes, long nanoseconds, int expected)
    {
        var ticks = (long)(nanoseconds / 1e9 * System.Diagnostics.Stopwatch.Frequency);
        Assert.Equal(expected, JournalLog.PrefaultWindowFor(bytes, ticks, SegmentSize));
    }

    /// <summary>
    /// The file's data extents (written, unwritten or delayed-allocation) as byte ranges, from FIEMAP (<c>filefrag</c>).
    /// Not st_blocks: that also counts the extent tree's own blocks, 4 KiB more once the file has over four extents,
    /// which writeback (splitting written from unwritten ranges) brings about at a moment that depends on the load of
    /// the machine: a loaded CI run once saw 12 MiB + 4 KiB "of blocks" with 12 MiB allocated and nothing past it.
    /// </summary>
    private static List<(long Start, long End)> Extents(string path)
    {
        // "   3:      768..    1023:   31803648..  31803903:    256:             unwritten" (logical range in 4 KiB blocks)
        var psi = new System.Diagnostics.ProcessStartInfo("filefrag", ["-v", "-b4096", path]) { RedirectStandardOutput = true };
        using var p = System.Diagnostics.Process.Start(psi)!;
        var text = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"filefrag -v {path}: exit code {p.ExitCode}{Environment.NewLine}{text}");
        var extents = new List<(long Start, long End)>();
        foreach (System.Text.RegularExpressions.Match m in System.Text.RegularExpressions.Regex.Matches(text, @"^\s*\d+:\s*(\d+)\.\.\s*(\d+):", System.Text.RegularExpressions.RegexOptions.Multiline))
        {
            var first = long.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            var last = long.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
            extents.Add((first * 4096, (last + 1) * 4096));
        }

        Assert.True(extents.Count > 0 || text.Contains(" 0 extents found", StringComparison.Ordinal), $"filefrag -v {path}: no extents parsed from{Environment.NewLine}{text}");
        return extents;
    }

    /// <summary>Blocks the file system holds for the file (st_blocks × 512), delayed allocations and extent-tree blocks included.</summary>
    private static long AllocatedBytes(string path)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("stat", ["-c", "%b %B", path]) { RedirectStandardOutput = true };
        using var p = System.Diagnostics.Process.Start(psi)!;
        var fields = p.StandardOutput.ReadToEnd().Trim().Split(' ');
        p.WaitForExit();
        return long.Parse(fields[0], System.Globalization.CultureInfo.InvariantCulture) * long.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture);
    }

    private static byte[] PayloadFor(long offset)
    {
        var bytes = new byte[RecordPayload];
        new Random((int)offset).NextBytes(bytes);
        return bytes;
    }

    private static void Append(JournalLog journal, long count)
    {
        for (long i = 0; i < count; i++)
        {
            Assert.True(journal.TryAppend(PayloadFor(journal.NextOffset), out _));
            if (i % 64 == 63)
            {
                journal.Commit(); // None policy: the writer's commit is what makes room under the undurable limit
            }
        }

        journal.Commit();
    }

    private static long ReadAllChecked(JournalLog journal)
    {
        long expected = 0;
        using var reader = journal.OpenReader(ReadStart.FromOffset(0), verifyChecksums: true);
        while (reader.TryRead(out var record))
        {
            Assert.Equal(expected, record.Offset);
            Assert.True(record.Payload.SequenceEqual(PayloadFor(expected)), $"payload of offset {expected}");
            expected++;
        }

        return expected;
    }

    private void WithTmpfs(string size, Action<TestMount> test)
    {
        using var dir = new TempDirectory();
        using var fs = TestMount.TryMount(dir.Combine("fs"), size, out var why);
        if (fs is null)
        {
            output.WriteLine($"SKIPPED: cannot mount a tmpfs ({why}); this test needs root or CAP_SYS_ADMIN.");
            return;
        }

        test(fs);
    }
}
