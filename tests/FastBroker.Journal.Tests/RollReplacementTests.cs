using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.Journal.Tests;

/// <summary>
/// The roll that replaces the active segment: an empty segment too small for a record (the journal reopened with a larger
/// <see cref="JournalOptions.SegmentSize"/>) is replaced by a segment of the same base offset, so of the same file name.
/// On a real small disk (a tmpfs) the replacement cannot be created: the append is refused, and the empty segment stays
/// the journal's, on disk and in use, until the disk has room again.
/// </summary>
public class RollReplacementTests(ITestOutputHelper output)
{
    private const long First = 1000; // offsets below were given (retention deleted their segments): never given again

    /// <param name="spares">With the pre-fault thread on, a spare may be prepared once there is room, and the roll adopts it
    /// over the empty segment's name instead of creating the replacement itself; without, it always creates it.</param>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_roll_that_cannot_create_the_replacement_of_an_empty_segment_leaves_it_the_active_one(bool spares)
    {
        using var dir = new TempDirectory();
        if (EmptySegmentOnASmallDisk(dir, spares) is not { } setup)
        {
            return;
        }

        var (mount, journalDir, large) = setup;
        using var unmount = mount;
        var emptySegment = Path.Combine(journalDir, $"{First:D20}.seg");
        var big = Payload(First, 100 << 10); // does not fit in a 64 KiB segment: the roll replaces the empty one
        using (var journal = JournalLog.Open(journalDir, large))
        {
            var full = Assert.Throws<JournalFullException>(() => journal.TryAppend(big, out _));
            output.WriteLine(full.Message);
            Assert.Equal(First, journal.NextOffset);
            Assert.True(File.Exists(emptySegment), $"the empty segment the failed roll would have replaced is gone: {string.Join(", ", Directory.GetFiles(journalDir))}");
            Assert.Equal(1, journal.SegmentCount);

            // Still no room: refused again, the same way, nothing written.
            Assert.Throws<JournalFullException>(() => journal.TryAppend(big, out _));
            Assert.Equal(First, journal.NextOffset);
        }

        // A restart while the disk is still full: the journal opens where it was, with nothing to repair.
        using (var journal = JournalLog.Open(journalDir, large))
        {
            Assert.True(journal.Recovery.IsClean, journal.Recovery.ToString());
            Assert.Equal(First, journal.NextOffset);
            Assert.Equal(First, journal.FirstOffset);

            // Room again: the same append rolls (the empty segment replaced by a 1 MiB one) and is acknowledged.
            var (grown, error) = TestMount.Run("mount", "-o", "remount,size=8m", mount.Path);
            Assert.True(grown, "remount with 8 MiB: " + error);
            Assert.True(journal.TryAppend(big, out var offset));
            Assert.Equal(First, offset);
            Assert.True(journal.TryAppend(Payload(First + 1, 100), out offset));
            Assert.Equal(First + 1, offset);
            journal.Commit();
            Assert.True(journal.WaitForDurable(offset, Eventually.DefaultTimeout));
            Assert.Equal(1, journal.SegmentCount);
            Assert.Equal(1 << 20, new FileInfo(emptySegment).Length);
        }

        // Every acknowledged record after a restart, in the replacement segment.
        using (var journal = JournalLog.Open(journalDir, large))
        {
            Assert.True(journal.Recovery.IsClean, journal.Recovery.ToString());
            Assert.Equal(First + 2, journal.NextOffset);
            using var reader = journal.OpenReader(ReadStart.Beginning, verifyChecksums: true);
            Assert.True(reader.TryRead(out var record));
            Assert.Equal(First, record.Offset);
            Assert.True(record.Payload.SequenceEqual(big));
            Assert.True(reader.TryRead(out record));
            Assert.Equal(First + 1, record.Offset);
            Assert.True(record.Payload.SequenceEqual(Payload(First + 1, 100)));
            Assert.False(reader.TryRead(out _));
        }

        Assert.Empty(Directory.GetFiles(journalDir, "spare-*"));
    }

    [Fact]
    public void After_a_failed_replacing_roll_a_record_that_fits_the_empty_segment_is_appended_there_and_survives_a_restart()
    {
        using var dir = new TempDirectory();
        if (EmptySegmentOnASmallDisk(dir, spares: false) is not { } setup)
        {
            return;
        }

        var (mount, journalDir, large) = setup;
        using var unmount = mount;
        using (var journal = JournalLog.Open(journalDir, large))
        {
            Assert.Throws<JournalFullException>(() => journal.TryAppend(Payload(First, 100 << 10), out _));

            // The disk is still full, but this one needs no new segment.
            Assert.True(journal.TryAppend(Payload(First, 200), out var offset));
            Assert.Equal(First, offset);
            journal.Commit();
            Assert.True(journal.WaitForDurable(offset, Eventually.DefaultTimeout));
            using var reader = journal.OpenReader(ReadStart.Beginning, verifyChecksums: true);
            Assert.True(reader.TryRead(out var record));
            Assert.Equal(First, record.Offset);
        }

        using (var journal = JournalLog.Open(journalDir, large))
        {
            Assert.True(journal.Recovery.IsClean, journal.Recovery.ToString());
            Assert.Equal(First + 1, journal.NextOffset);
            using var reader = journal.OpenReader(ReadStart.Beginning, verifyChecksums: true);
            Assert.True(reader.TryRead(out var record));
            Assert.Equal(First, record.Offset);
            Assert.True(record.Payload.SequenceEqual(Payload(First, 200)));
        }
    }

    /// <summary>
    /// A 512 KiB tmpfs holding a journal whose only segment is an empty 64 KiB one, and the options that reopen it with
    /// 1 MiB segments: more than the disk holds, so no new segment can be created. Null where no tmpfs can be mounted:
    /// xunit 2 has no dynamic skip, so the test says why, loudly, and passes (as DiskFullTests).
    /// </summary>
    private (TestMount Mount, string JournalDir, JournalOptions Large)? EmptySegmentOnASmallDisk(TempDirectory dir, bool spares)
    {
        var mount = TestMount.TryMount(dir.Combine("small-fs"), "512k", out var why);
        if (mount is null)
        {
            output.WriteLine($"SKIPPED: cannot mount a 512 KiB tmpfs ({why}); this test needs root or CAP_SYS_ADMIN.");
            return null;
        }

        var journalDir = Path.Combine(mount.Path, "journal");
        var small = new JournalOptions
        {
            SegmentSize = 64 << 10,
            IndexIntervalBytes = 1024,
            Durability = DurabilityPolicy.GroupCommit,
            PrefaultSegments = spares,
            InitialOffset = First,
        };
        using (JournalLog.Open(journalDir, small))
        {
            // One empty 64 KiB segment, the journal's only one.
        }

        return (mount, journalDir, small with { SegmentSize = 1 << 20, InitialOffset = 0 });
    }

    private static byte[] Payload(long offset, int length)
    {
        var bytes = new byte[length];
        for (var i = 0; i < length; i++)
        {
            bytes[i] = (byte)((offset * 31) + (i * 7) + 1);
        }

        return bytes;
    }
}
