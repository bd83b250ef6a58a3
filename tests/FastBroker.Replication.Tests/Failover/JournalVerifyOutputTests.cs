using System.Globalization;
using FastBroker.Journal;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>fastbroker journal verify</c> on a journal whose second segment lost its identity block before it was ever synced
/// (a lost tail, which open removes with every later file): the file's line counts the records still found after the
/// lost header, the number open reports dropped, says what open does with it, and the totals include them; every later
/// file's line says open removes it, and the summary gives the records and files the open reports dropped and removed.
/// </summary>
public class JournalVerifyOutputTests
{
    [Fact]
    public async Task Verify_prints_the_records_of_a_blank_header_lost_tail_that_open_reports_dropped()
    {
        using var dir = new TempDirectory("fastbroker-cli-verify-blank");
        var journal = dir.Combine("journal");
        const int Count = 3000;
        using (var log = JournalLog.Open(journal, JournalOptions.Default with { SegmentSize = 64 << 10, Durability = DurabilityPolicy.None }))
        {
            for (var i = 0; i < Count; i++)
            {
                Assert.True(log.TryAppend("a record of the journal"u8, out _));
            }

            log.Commit();
            Eventually.True(() => Directory.GetFiles(journal, "*.idx").Length >= log.SegmentCount - 1, "closed segments get sealed by the flusher");
        }

        var segments = Directory.GetFiles(journal, "*.seg").Order(StringComparer.Ordinal).ToArray();
        Assert.True(segments.Length >= 3, $"{segments.Length} segments");
        foreach (var s in segments[1..])
        {
            Zero(s, 64, 64); // never sealed: no seal trailer, no index file
            File.Delete(Path.ChangeExtension(s, ".idx"));
        }

        Zero(segments[1], 0, 64); // and its identity block never reached the disk
        var blankRecords = RecordsIn(segments[1]);
        Assert.True(blankRecords > 0);
        var laterRecords = segments[2..].Select(RecordsIn).ToArray();

        string[] args = ["journal", "verify", journal];
        var outcome = await CliOutcome.RunAsync(args);
        Assert.True(outcome.ExitCode == 2, outcome.Describe(args) + "\n" + outcome.Output);
        var line = outcome.Output.Split('\n').Single(l => l.StartsWith(Path.GetFileName(segments[1]), StringComparison.Ordinal));
        Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"records {blankRecords,10}"), line, StringComparison.Ordinal);
        Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"a lost tail (open removes this file and every later one, its {blankRecords} record(s) reported dropped)"), line, StringComparison.Ordinal);
        Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"{segments.Length} segment(s), {Count} record(s)"), outcome.Output, StringComparison.Ordinal);

        using var opened = JournalLog.Open(journal, JournalOptions.Default with { SegmentSize = 64 << 10, Durability = DurabilityPolicy.None });
        Assert.Equal(blankRecords, opened.Recovery.Dropped[0].RecordCount);

        // Every later file is shown as removed with its records, and the summary gives the open's report.
        for (var i = 2; i < segments.Length; i++)
        {
            var later = outcome.Output.Split('\n').Single(l => l.StartsWith(Path.GetFileName(segments[i]), StringComparison.Ordinal));
            Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"open removes this file (after the lost tail at {Path.GetFileName(segments[1])}), its {laterRecords[i - 2]} record(s) reported dropped"), later, StringComparison.Ordinal);
        }

        Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"open reports {opened.Recovery.DroppedRecordCount} record(s) dropped and {opened.Recovery.RemovedFiles.Count} file(s) removed: DAMAGED TAIL"), outcome.Output, StringComparison.Ordinal);
    }

    private static void Zero(string path, long position, int length)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        stream.Position = position;
        stream.Write(new byte[length]);
    }

    /// <summary>Records in a segment file, walked by their length words from byte 128 (docs/journal-format.md).</summary>
    private static int RecordsIn(string segment)
    {
        var bytes = File.ReadAllBytes(segment);
        var (position, count) = (128, 0);
        while (position + 32 <= bytes.Length && BitConverter.ToInt32(bytes, position) is var length and > 0)
        {
            position += (length + 7) & ~7;
            count++;
        }

        return count;
    }
}
