using System.Buffers.Binary;
using System.Globalization;
using FastBroker.Journal;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>fastbroker journal dump</c> and <c>verify</c> (the CLI as a process) on a journal that this test process holds
/// open (its <c>journal.lock</c> held with the exclusive flock the journal takes) and whose last segment ends in a
/// record being written (its length word stored, its body not yet): that record is the end, exit 0, and stderr says the
/// journal is open in another process; damage in a sealed segment is still damage; with the lock released the same
/// bytes are a torn tail again, exit 1 and 2.
/// </summary>
public class JournalLiveInspectionTests
{
    private const int RecordCount = 3000;
    private const string OpenNote = "is open in another process";

    [Fact]
    public async Task Dump_and_verify_take_a_record_being_written_in_an_open_journal_as_its_end()
    {
        using var dir = new TempDirectory("fastbroker-cli-dump-live");
        var journal = dir.Combine("journal");
        var segments = WriteWithPartialLastRecord(journal);
        var before = segments.Select(File.ReadAllBytes).ToArray();
        string[] dump = ["journal", "dump", journal];
        string[] verify = ["journal", "verify", journal];

        // Nobody has it open: a torn tail, as before.
        var closedDump = await CliOutcome.RunAsync(dump);
        Assert.True(closedDump.ExitCode == 1 && !closedDump.Errors.Contains(OpenNote, StringComparison.Ordinal), closedDump.Describe(dump));
        var closedVerify = await CliOutcome.RunAsync(verify);
        Assert.True(closedVerify.ExitCode == 2, closedVerify.Describe(verify));

        using (HoldLock(journal))
        {
            var liveDump = await CliOutcome.RunAsync(dump);
            var lines = liveDump.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            var context = $"{liveDump.Describe(dump)}\n{lines.Length} line(s), the last: {lines.LastOrDefault()}";
            Assert.True(liveDump.ExitCode == 0, context);
            Assert.True(lines.Length == RecordCount, context);
            Assert.StartsWith(string.Create(CultureInfo.InvariantCulture, $"offset={RecordCount - 1} "), lines[^1], StringComparison.Ordinal);
            Assert.True(liveDump.Errors.Contains(OpenNote, StringComparison.Ordinal), context);

            var liveVerify = await CliOutcome.RunAsync(verify);
            Assert.True(liveVerify.ExitCode == 0 && liveVerify.Errors.Contains(OpenNote, StringComparison.Ordinal), liveVerify.Describe(verify));
            Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"{RecordCount} record(s)"), liveVerify.Output, StringComparison.Ordinal);

            // Damage in a sealed segment is damage whoever has the journal open.
            var sealedSegment = segments[1];
            var records = Records(sealedSegment);
            var hit = records[records.Count / 2];
            FlipBit(sealedSegment, hit.Position + 20);
            var damagedDump = await CliOutcome.RunAsync(dump);
            var stopped = string.Create(CultureInfo.InvariantCulture, $"stopped after {hit.Offset} record(s) at damage: {Path.GetFileName(sealedSegment)}: CRC32C mismatch at byte {hit.Position}");
            Assert.True(damagedDump.ExitCode == 1 && damagedDump.Errors.Contains(stopped, StringComparison.Ordinal), $"expected on stderr: {stopped}\n{damagedDump.Describe(dump)}");
            var damagedVerify = await CliOutcome.RunAsync(verify);
            Assert.True(damagedVerify.ExitCode == 1, damagedVerify.Describe(verify));
            FlipBit(sealedSegment, hit.Position + 20);
        }

        Assert.Equal(before, segments.Select(File.ReadAllBytes));
    }

    /// <summary>The lock the journal holds while it is open: an exclusive flock on journal.lock.</summary>
    private static FileStream HoldLock(string journal) =>
        new(Path.Combine(journal, "journal.lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);

    /// <summary>
    /// A valid journal of <see cref="RecordCount"/> records, all segments sealed but the last, which ends in the record
    /// being written after them: its length word, nothing else.
    /// </summary>
    private static string[] WriteWithPartialLastRecord(string journal)
    {
        var options = JournalOptions.Default with { SegmentSize = 64 << 10, Durability = DurabilityPolicy.None };
        using (var log = JournalLog.Open(journal, options))
        {
            for (var i = 0; i < RecordCount; i++)
            {
                Assert.True(log.TryAppend("a record of the journal"u8, out _));
            }

            log.Commit();
            Eventually.True(() => Directory.GetFiles(journal, "*.idx").Length >= log.SegmentCount - 1, "closed segments get sealed by the flusher");
        }

        var segments = Directory.GetFiles(journal, "*.seg").Order(StringComparer.Ordinal).ToArray();
        Assert.True(segments.Length >= 3, $"{segments.Length} segments");
        var last = segments[^1];
        using (var stream = new FileStream(last, FileMode.Open, FileAccess.ReadWrite))
        {
            stream.Position = 64;
            stream.Write(new byte[64]); // the active segment: not sealed yet
            var lastRecord = Records(last)[^1];
            var word = new byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(word, 32 + 200);
            stream.Position = lastRecord.Position + lastRecord.Length;
            stream.Write(word);
        }

        File.Delete(Path.ChangeExtension(last, ".idx"));
        return segments;
    }

    private static void FlipBit(string path, long position)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        stream.Position = position;
        var b = stream.ReadByte();
        stream.Position = position;
        stream.WriteByte((byte)(b ^ 1));
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
