using FastBroker.Journal;
using FastBroker.Journal.CrashHost;
using FastBroker.Testing;

namespace FastBroker.Crash.Tests;

/// <summary>
/// kill -9 of a process opening a damaged journal as a standby opens its copy (keep the damaged segment and every later
/// file aside, then cut with RepairCorruption: the crash host's keep-aside mode), at each point from the first file kept
/// to the cut's last step; then the same open again, run through. It must end with exactly one kept directory holding
/// the files as they were before the cut, and a journal cut at the damaged record, whatever the point.
/// </summary>
public class KeepAsideCrashTests
{
    private static string HostPath => Path.Combine(AppContext.BaseDirectory, "FastBroker.Journal.CrashHost.dll");

    /// <summary>
    /// "file": killed with one file kept (a partial directory); "kept": with the keep done and the cut not recorded (its
    /// repair log not written: the next open finds the same damage); "LogWritten", "FilesDeleted": with the cut
    /// recorded, part-way (the next open finishes it and finds no damage).
    /// </summary>
    [Theory]
    [InlineData("file")]
    [InlineData("kept")]
    [InlineData("LogWritten")]
    [InlineData("FilesDeleted")]
    public void A_kill_between_keeping_aside_and_the_cut_leaves_one_kept_copy_and_a_cut_journal_after_the_next_open(string point)
    {
        Assert.True(File.Exists(HostPath), $"crash host not built next to the tests: {HostPath}");
        using var dir = new TempDirectory("fastbroker-keepaside-crash");
        var journalDir = dir.Combine("journal");
        var root = dir.Combine("damaged");
        RepairCrashTests.Write(journalDir);
        var segments = RepairCrashTests.Segments(journalDir);
        Assert.True(segments.Length >= 4, $"{segments.Length} segments");
        var damaged = segments[1];
        var victim = RepairCrashTests.Records(damaged)[7];
        RepairCrashTests.FlipBit(damaged, victim.Position + 20); // its timestamp: the CRC fails
        var before = Directory.GetFiles(journalDir)
            .Where(f => string.CompareOrdinal(Path.GetFileNameWithoutExtension(f), Path.GetFileNameWithoutExtension(damaged)) >= 0 && (f.EndsWith(".seg", StringComparison.Ordinal) || f.EndsWith(".idx", StringComparison.Ordinal)))
            .ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes, StringComparer.Ordinal);

        using (var child = ChildProcess.StartDotnet(HostPath, journalDir, "keep-aside", point, root))
        {
            Eventually.True(() => child.Lines.Contains("at " + point) || child.HasExited, $"the open reaches {point}");
            Assert.False(child.HasExited, $"the open ended before {point}: {string.Join(" | ", child.Lines)} {child.Errors}");
            child.Kill();
        }

        string[] second;
        using (var child = ChildProcess.StartDotnet(HostPath, journalDir, "keep-aside", "none", root))
        {
            Assert.True(child.WaitForExit(Eventually.DefaultTimeout), "the next open ends");
            second = [.. child.Lines];
            Assert.True(child.ExitCode == 0 && second.Contains($"opened {victim.Offset}"), $"the next open: exit {child.ExitCode}: {string.Join(" | ", second)} {child.Errors}");
        }

        var entries = Directory.GetFileSystemEntries(root).Select(Path.GetFileName).ToArray();
        Assert.True(entries.Length == 1 && entries[0]!.StartsWith("t-", StringComparison.Ordinal) && !entries[0]!.EndsWith(".partial", StringComparison.Ordinal), $"killed at {point}, then opened again: {entries.Length} entries under damaged/, one kept directory expected: [{string.Join(", ", entries)}]; the next open said: {string.Join(" | ", second)}");
        var kept = Path.Combine(root, entries[0]!);
        Assert.Equal(before.Keys.Order(StringComparer.Ordinal), Directory.GetFiles(kept).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        foreach (var (name, bytes) in before)
        {
            Assert.True(bytes.AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(kept, name))), $"{name} kept in {kept} differs from the file before the cut");
        }

        using (var journal = JournalLog.Open(journalDir, CrashPayload.Options))
        {
            Assert.True(journal.Recovery.IsClean, "the cut is done: " + journal.Recovery);
            RepairCrashTests.AssertHoldsExactly(journal, victim.Offset);
        }
    }
}
