using FastBroker.Journal.Internal;
using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

/// <summary>
/// <see cref="DamagedSegments.KeepAside"/> before a repairing open: the damaged segment copied, the later files linked,
/// all of them as they were before the repair, which then cuts and deletes the journal's own files as it always does.
/// </summary>
public class DamagedSegmentsTests
{
    [Fact]
    public void The_damaged_segment_and_every_later_file_are_kept_as_they_were_before_the_repair()
    {
        using var dir = new TempDirectory();
        var journalDir = dir.Combine("journal");
        using (var journal = JournalLog.Open(journalDir, AppendReadTests.Small))
        {
            AppendReadTests.AppendRange(journal, 3000);
            RetentionTests.SealAll(journal);
        }

        var segments = JournalFiles.Segments(journalDir);
        Assert.True(segments.Length >= 4, $"{segments.Length} segments");
        var damaged = segments[1];
        var victim = JournalFiles.Records(damaged)[7];
        JournalFiles.FlipBit(damaged, victim.Position + 40);
        var e = Assert.Throws<JournalCorruptionException>(() => JournalLog.Open(journalDir, AppendReadTests.Small));
        Assert.Equal(damaged, e.FilePath);

        var before = Directory.GetFiles(journalDir)
            .Where(f => string.CompareOrdinal(Path.GetFileNameWithoutExtension(f), Path.GetFileNameWithoutExtension(damaged)) >= 0 && (f.EndsWith(".seg", StringComparison.Ordinal) || f.EndsWith(".idx", StringComparison.Ordinal)))
            .ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes, StringComparer.Ordinal);
        var destination = DamagedSegments.DirectoryFor(dir.Combine("damaged"), "t", new DateTimeOffset(2026, 12, 6, 10, 5, 9, TimeSpan.Zero));
        Assert.Equal(dir.Combine("damaged", "t-20261206T100509Z"), destination);

        var kept = DamagedSegments.KeepAside(journalDir, e.FilePath, destination);
        Assert.Equal(before.Keys.Order(StringComparer.Ordinal), kept.Order(StringComparer.Ordinal));
        foreach (var name in kept)
        {
            // Later files share the journal's inode (no copy, no space); the damaged one, which the repair zeroes, does not.
            Assert.True(Native.TryGetFileId(Path.Combine(journalDir, name), out var original, out _));
            Assert.True(Native.TryGetFileId(Path.Combine(destination, name), out var copy, out _));
            Assert.Equal(Path.GetFileNameWithoutExtension(name) != Path.GetFileNameWithoutExtension(damaged), original == copy);
        }

        using (var repaired = JournalLog.Open(journalDir, AppendReadTests.Small with { RepairCorruption = true }))
        {
            Assert.Equal(victim.Offset, repaired.NextOffset);
        }

        Assert.Equal([Path.GetFileName(segments[0]), Path.GetFileName(damaged)], JournalFiles.Segments(journalDir).Select(Path.GetFileName));
        foreach (var (name, bytes) in before)
        {
            Assert.True(bytes.AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(destination, name))), $"{name} kept differs from the file before the repair");
        }

        // A second repair in the same second gets its own directory; an existing one is never written into.
        Assert.Equal(destination + "-2", DamagedSegments.DirectoryFor(dir.Combine("damaged"), "t", new DateTimeOffset(2026, 12, 6, 10, 5, 9, TimeSpan.Zero)));
        Assert.Throws<IOException>(() => DamagedSegments.KeepAside(journalDir, damaged, destination));
    }

    /// <summary>
    /// KeepAsideOnce finds an earlier keep of the very same files under its label (and only its label: topic <c>a</c>
    /// never takes topic <c>a-b</c>'s), removes its label's <c>.partial</c> directories, and keeps again once the files
    /// differ.
    /// </summary>
    [Fact]
    public void Keeping_aside_once_finds_the_same_files_kept_under_its_own_label_only()
    {
        using var dir = new TempDirectory();
        var journalDir = dir.Combine("journal");
        using (var journal = JournalLog.Open(journalDir, AppendReadTests.Small))
        {
            AppendReadTests.AppendRange(journal, 3000);
            RetentionTests.SealAll(journal);
        }

        var damaged = JournalFiles.Segments(journalDir)[1];
        JournalFiles.FlipBit(damaged, JournalFiles.Records(damaged)[7].Position + 40);
        var root = dir.Combine("damaged");
        var time = new DateTimeOffset(2026, 12, 6, 10, 5, 9, TimeSpan.Zero);
        var other = DamagedSegments.KeepAsideOnce(journalDir, damaged, root, "a-b", time);
        Directory.CreateDirectory(Path.Combine(root, "a-20261206T100508Z.partial"));
        Directory.CreateDirectory(Path.Combine(root, "a-b-20261206T100508Z.partial"));

        var first = DamagedSegments.KeepAsideOnce(journalDir, damaged, root, "a", time);
        Assert.False(first.KeptBefore, "topic a took topic a-b's directory: " + first.Directory);
        var again = DamagedSegments.KeepAsideOnce(journalDir, damaged, root, "a", time.AddSeconds(5));
        Assert.Equal((first.Directory, true), (again.Directory, again.KeptBefore));
        Assert.Equal(first.Files, again.Files);
        Assert.Equal(
            ["a-20261206T100509Z", "a-b-20261206T100508Z.partial", "a-b-20261206T100509Z"],
            Directory.GetDirectories(root).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.False(other.KeptBefore);

        // The damaged segment changed (another bit): these are not the files kept, so they are kept again.
        JournalFiles.FlipBit(damaged, JournalFiles.Records(damaged)[9].Position + 40);
        var changed = DamagedSegments.KeepAsideOnce(journalDir, damaged, root, "a", time.AddSeconds(5));
        Assert.Equal((dir.Combine("damaged", "a-20261206T100514Z"), false), (changed.Directory, changed.KeptBefore));
    }
}
