using FastBroker.Journal;
using FastBroker.Journal.CrashHost;
using FastBroker.Testing;

namespace FastBroker.Crash.Tests;

/// <summary>
/// kill -9 of a process whose open is repairing the journal, at a step of the repair (the crash host waits there to be
/// killed): the next open, a plain one, must still report everything that repair dropped, and finish the repair when
/// the kill came before its end, in that one open.
/// </summary>
public class RepairCrashTests
{
    internal const int Count = 4000;

    private static string HostPath => Path.Combine(AppContext.BaseDirectory, "FastBroker.Journal.CrashHost.dll");

    /// <summary>
    /// "torn tail": a bad record in the middle of the unsealed last segment, which any open cuts, killed once the cut is
    /// zeroed (a later open finds a clean journal, so only the repair's own record can tell what was lost).
    /// "sealed corruption": a bad record in the second, sealed, segment, repaired with RepairCorruption (the later files
    /// deleted, the segment unsealed and cut), killed once it is zeroed, once only the later files are deleted (the
    /// damaged segment still sealed: a plain open alone would refuse it), or as soon as its log is written.
    /// </summary>
    [Theory]
    [InlineData("torn tail", "Zeroed")]
    [InlineData("sealed corruption", "Zeroed")]
    [InlineData("sealed corruption", "FilesDeleted")]
    [InlineData("sealed corruption", "LogWritten")]
    public void A_repair_killed_before_its_open_ends_is_finished_and_reported_by_the_next_plain_open(string damage, string step)
    {
        Assert.True(File.Exists(HostPath), $"crash host not built next to the tests: {HostPath}");
        using var dir = new TempDirectory("fastbroker-repair-crash");
        Write(dir.Path);
        var segments = Segments(dir.Path);
        Assert.True(segments.Length >= 4, $"{segments.Length} segments");
        var damaged = damage == "torn tail" ? segments[^1] : segments[1];
        var records = Records(damaged);
        var first = records.Count / 2;
        var victim = records[first];
        FlipBit(damaged, victim.Position + 20); // its timestamp: the CRC fails
        string[] removed = damage == "torn tail" ? [] : segments[2..];

        using (var child = ChildProcess.StartDotnet(HostPath, dir.Path, "repair", step, damage == "torn tail" ? "plain" : "repair-corruption"))
        {
            Eventually.True(() => child.Lines.Contains("at " + step) || child.HasExited, $"the repair reaches {step}");
            Assert.False(child.HasExited, $"the open ended before {step}: {string.Join(" | ", child.Lines)} {child.Errors}");
            child.Kill();
        }

        using (var journal = JournalLog.Open(dir.Path, CrashPayload.Options))
        {
            var report = journal.Recovery;
            Assert.NotEmpty(report.Dropped);
            var dropped = report.Dropped[0];
            Assert.Equal((damaged, victim.Position, victim.Offset, records.Count - first), (dropped.FilePath, dropped.StartPosition, dropped.FirstOffset, dropped.RecordCount));
            Assert.Equal(removed, report.RemovedFiles);
            Assert.Equal(removed, report.Dropped.Skip(1).Select(d => d.FilePath));
            Assert.Equal(Count - victim.Offset, report.DroppedRecordCount);
            AssertHoldsExactly(journal, victim.Offset);
        }

        using (var journal = JournalLog.Open(dir.Path, CrashPayload.Options))
        {
            Assert.True(journal.Recovery.IsClean, "reported once: " + journal.Recovery);
            Assert.Equal(victim.Offset, journal.NextOffset);
        }

        Assert.Equal(0, JournalInspector.Verify(dir.Path).ExitCode);
    }

    /// <summary>A journal of <see cref="Count"/> records over the crash host's small segments, every closed one sealed.</summary>
    internal static void Write(string path)
    {
        using var journal = JournalLog.Open(path, CrashPayload.Options);
        for (long offset = 0; offset < Count; offset++)
        {
            Assert.True(journal.TryAppend(CrashPayload.For(offset), out _));
        }

        journal.Commit();
        Assert.True(journal.WaitForDurable(Count - 1, Eventually.DefaultTimeout));
        Eventually.True(() => Directory.GetFiles(path, "*.idx").Length >= journal.SegmentCount - 1, "closed segments get sealed by the flusher");
    }

    /// <summary>
    /// Asserts that <paramref name="journal"/> ends at <paramref name="end"/> and that a reader from its beginning,
    /// checksums verified, reads every record before it, in order, each with its <see cref="CrashPayload"/>, and no more.
    /// </summary>
    internal static void AssertHoldsExactly(JournalLog journal, long end)
    {
        Assert.Equal(end, journal.NextOffset);
        using var reader = journal.OpenReader(ReadStart.Beginning, verifyChecksums: true);
        long expected = 0;
        while (reader.TryRead(out var record))
        {
            Assert.True(record.Offset == expected && record.Payload.SequenceEqual(CrashPayload.For(expected)), $"record {expected}");
            expected++;
        }

        Assert.Equal(end, expected);
    }

    internal static string[] Segments(string dir) => [.. Directory.GetFiles(dir, "*.seg").Order(StringComparer.Ordinal)];

    /// <summary>(position, length, offset) of every record in a segment file (docs/journal-format.md).</summary>
    internal static List<(int Position, int Length, long Offset)> Records(string segment)
    {
        var bytes = File.ReadAllBytes(segment);
        var list = new List<(int, int, long)>();
        var position = 128;
        while (position + 32 <= bytes.Length && BitConverter.ToInt32(bytes, position) is var length and > 0)
        {
            list.Add((position, length, BitConverter.ToInt64(bytes, position + 8)));
            position += (length + 7) & ~7;
        }

        return list;
    }

    internal static void FlipBit(string path, long position)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        stream.Position = position;
        var b = stream.ReadByte();
        stream.Position = position;
        stream.WriteByte((byte)(b ^ 1));
    }
}
