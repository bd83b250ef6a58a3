using System.Globalization;
using FastBroker.Journal;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>fastbroker journal dump</c> on a journal whose unsealed second segment lost its last records before a power loss
/// (a lost tail: the third segment starts after a gap, and open removes it with every later file): it prints the records
/// up to the last one before the gap, none after it, says on stderr where and why it stopped, exits 1, and changes no
/// file.
/// </summary>
public class JournalDumpOutputTests
{
    [Fact]
    public async Task Dump_stops_at_a_lost_tail_says_where_and_exits_1()
    {
        using var dir = new TempDirectory("fastbroker-cli-dump-gap");
        var journal = dir.Combine("journal");
        var options = JournalOptions.Default with { SegmentSize = 64 << 10, Durability = DurabilityPolicy.None };
        using (var log = JournalLog.Open(journal, options))
        {
            for (var i = 0; i < 3000; i++)
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

        // The second segment's last three records never reached the disk.
        var records = Records(segments[1]);
        var lost = records[^3];
        Zero(segments[1], lost.Position, records[^1].Position + records[^1].Length - lost.Position);
        var before = segments.Select(File.ReadAllBytes).ToArray();

        string[] args = ["journal", "dump", journal];
        var outcome = await CliOutcome.RunAsync(args);
        var lines = outcome.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var context = $"{outcome.Describe(args)}\n{lines.Length} line(s), the last: {lines.LastOrDefault()}";
        Assert.True(outcome.ExitCode == 1, context);
        Assert.True(lines.Length == lost.Offset, context);
        Assert.StartsWith(string.Create(CultureInfo.InvariantCulture, $"offset={lost.Offset - 1} "), lines[^1], StringComparison.Ordinal);
        var stopped = string.Create(CultureInfo.InvariantCulture, $"stopped after {lost.Offset} record(s) at damage: {Path.GetFileName(segments[2])}: starts at offset {records[^1].Offset + 1} but the previous segment ends at {lost.Offset}");
        Assert.True(outcome.Errors.Contains(stopped, StringComparison.Ordinal), $"expected on stderr: {stopped}\n{context}");
        Assert.False(outcome.HasStackTrace, context);
        Assert.Equal(before, segments.Select(File.ReadAllBytes));
    }

    private static void Zero(string path, long position, int length)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        stream.Position = position;
        stream.Write(new byte[length]);
    }

    /// <summary>(position, padded length, offset) of the records in a segment file, walked by their length words from byte 128.</summary>
    private static List<(int Position, int Length, long Offset)> Records(string segment)
    {
        var bytes = File.ReadAllBytes(segment);
        var list = new List<(int, int, long)>();
        var position = 128;
        while (position + 32 <= bytes.Length && BitConverter.ToInt32(bytes, position) is var length and > 0)
        {
            var padded = (length + 7) & ~7;
            list.Add((position, padded, BitConverter.ToInt64(bytes, position + 8)));
            position += padded;
        }

        return list;
    }
}
