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
            Append(journal, 10);
            Eventually.True(() => journal.PrefaultIdle, "the pre-fault thread finishes its window");
            var used = fs.Used;
            output.WriteLine($"quiet: {used >> 10} KiB used");
            Assert.True(used <= JournalLog.MinPrefaultWindow + (2 << 20), $"a quiet 64 MiB segment uses {used} bytes of disk");
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

    [Theory]
    [InlineData(1000L, 1_000_000_000L, 4 << 20)] // 1 KB/s: the minimum window
    [InlineData(15_000_000L, 1_000_000_000L, 4 << 20)] // 15 MB/s (100k msg/s): 3 MB in 200 ms
    [InlineData(100_000_000L, 1_000_000_000L, 32 << 20)] // 100 MB/s: 20 MB in 200 ms, rounded up to a power of two
    [InlineData(1_000_000_000L, 1_000_000_000L, 64 << 20)] // 1 GB/s: the whole segment
    public void The_prefault_window_covers_200_ms_of_writing_between_4_MiB_and_the_segment(long bytes, long nanoseconds, int expected)
    {
        var ticks = (long)(nanoseconds / 1e9 * System.Diagnostics.Stopwatch.Frequency);
        Assert.Equal(expected, JournalLog.PrefaultWindowFor(bytes, ticks, SegmentSize));
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

    private void WithTmpfs(string size, Action<TmpfsMount> test)
    {
        using var dir = new TempDirectory();
        using var fs = TmpfsMount.TryMount(dir.Combine("fs"), size, out var why);
        if (fs is null)
        {
            output.WriteLine($"SKIPPED: cannot mount a tmpfs ({why}); this test needs root or CAP_SYS_ADMIN.");
            return;
        }

        test(fs);
    }
}
