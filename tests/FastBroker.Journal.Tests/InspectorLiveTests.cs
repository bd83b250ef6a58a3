using System.Buffers.Binary;
using System.Diagnostics;
using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

/// <summary>
/// dump and verify on a journal open in a process (its <c>journal.lock</c> held): the record being written at the end
/// of the last segment (its length word stored, the rest not yet) is the end for now, not damage; damage anywhere before
/// it still is; and a journal no process has open keeps its torn tail a torn tail.
/// </summary>
public class InspectorLiveTests
{
    private const int Records = 3000;

    [Theory]
    [InlineData("length word only")]
    [InlineData("all but its CRC")]
    public void A_record_being_written_at_the_end_of_an_open_journal_is_the_end_not_damage(string written)
    {
        using var dir = new TempDirectory();
        var last = WriteWithUnsealedTail(dir.Path);
        var end = EndOfRecords(last);
        WritePartialRecord(last, end, Records, written);

        // No process has it open: a torn tail, as before.
        Assert.NotNull(DumpAll(dir.Path, null, out var closedVisited));
        Assert.Equal(Records, closedVisited);
        Assert.Equal(2, JournalInspector.Verify(dir.Path).ExitCode);

        using (HoldLock(dir.Path))
        {
            var problem = DumpAll(dir.Path, null, out var visited);
            Assert.True(problem is null, $"{written}: dump of the open journal stopped at damage: {problem}");
            Assert.Equal(Records, visited);
            Assert.Null(DumpAll(dir.Path, Records - 10, out var fromNearEnd));
            Assert.Equal(10, fromNearEnd);

            var report = JournalInspector.Verify(dir.Path);
            Assert.True(report.ExitCode == 0, $"{written}: verify of the open journal: exit {report.ExitCode}, {string.Join("; ", report.Segments.Select(s => s.Problem).OfType<string>())}");
            Assert.Equal(Records, report.RecordCount);

            // The owner's lock is still the owner's: a writer still cannot open the journal.
            var refused = Assert.Throws<JournalException>(() => JournalLog.Open(dir.Path, AppendReadTests.Small).Dispose());
            Assert.Contains("already open", refused.Message, StringComparison.Ordinal);
        }

        // Closed again (the owner gone): the same bytes are a torn tail again, which open cuts.
        Assert.Equal(2, JournalInspector.Verify(dir.Path).ExitCode);
        using var journal = JournalLog.Open(dir.Path, AppendReadTests.Small);
        Assert.Equal(Records, journal.NextOffset);
    }

    /// <summary>
    /// With the journal open and a record being written at its end, damage before that record is still damage: in a
    /// sealed segment (open refuses it), in the last segment before its last record, or after the partial record.
    /// </summary>
    [Theory]
    [InlineData("a flipped bit in a sealed segment", 1)]
    [InlineData("a flipped bit in the last segment before its last record", 2)]
    [InlineData("non-zero bytes after the record being written", 2)]
    public void Damage_before_the_record_being_written_is_still_damage_while_the_journal_is_open(string damage, int exitCode)
    {
        using var dir = new TempDirectory();
        var last = WriteWithUnsealedTail(dir.Path);
        var end = EndOfRecords(last);
        WritePartialRecord(last, end, Records, "length word only");
        var segments = JournalFiles.Segments(dir.Path);
        string where;
        long stop;
        switch (damage)
        {
            case "a flipped bit in a sealed segment":
                var sealedRecords = JournalFiles.Records(segments[1]);
                var hit = sealedRecords[sealedRecords.Count / 2];
                JournalFiles.FlipBit(segments[1], hit.Position + 20);
                (where, stop) = ($"{Path.GetFileName(segments[1])}: CRC32C mismatch at byte {hit.Position}", hit.Offset);
                break;
            case "a flipped bit in the last segment before its last record":
                var lastRecords = JournalFiles.Records(last);
                var torn = lastRecords[lastRecords.Count - 4]; // the partial record is the last one walked
                JournalFiles.FlipBit(last, torn.Position + 20);
                (where, stop) = ($"{Path.GetFileName(last)}: CRC32C mismatch at byte {torn.Position}", torn.Offset);
                break;
            default:
                using (var stream = new FileStream(last, FileMode.Open, FileAccess.ReadWrite))
                {
                    stream.Position = end + 4096;
                    stream.Write([0xAB, 0xAB, 0xAB, 0xAB]);
                }

                (where, stop) = ($"{Path.GetFileName(last)}: ", Records);
                break;
        }

        using (HoldLock(dir.Path))
        {
            var problem = DumpAll(dir.Path, null, out var visited);
            Assert.True(problem is not null && problem.Contains(where, StringComparison.Ordinal), $"{damage}: expected a problem naming '{where}', got: {problem ?? "none"} after {visited} record(s)");
            Assert.Equal(stop, visited);
            var report = JournalInspector.Verify(dir.Path);
            Assert.True(report.ExitCode == exitCode, $"{damage}: verify of the open journal: exit {report.ExitCode}, expected {exitCode}");
        }
    }

    /// <summary>
    /// A writer appending records of varied sizes on its own thread (rolling to new segments) while dump and verify run
    /// again and again against its directory: neither ever reports damage. The writer appends while each run reads
    /// (up to a few hundred KiB a run, which keeps the journal small), so every run meets an end that moves.
    /// </summary>
    [Fact]
    public void Dump_and_verify_of_a_journal_being_appended_to_report_no_damage()
    {
        using var dir = new TempDirectory();
        var options = AppendReadTests.Small with { SegmentSize = 1 << 20 };
        using var journal = JournalLog.Open(dir.Path, options);
        var allowance = 0L; // bytes the writer may still append in this run
        var stop = false;
        Exception? writerFailure = null;
        var writer = new Thread(() =>
        {
            try
            {
                var payload = new byte[16 << 10];
                Random.Shared.NextBytes(payload);
                var n = 0L;
                var spin = new SpinWait();
                while (!Volatile.Read(ref stop))
                {
                    if (Volatile.Read(ref allowance) <= 0)
                    {
                        spin.SpinOnce();
                        continue;
                    }

                    var length = 64 + (int)(n * 7919 % (payload.Length - 64));
                    if (!journal.TryAppend(payload.AsSpan(0, length), out _))
                    {
                        journal.Commit(); // back-pressure: under the None policy the writer's commit makes room
                        continue;
                    }

                    Interlocked.Add(ref allowance, -length);
                    if (++n % 8 == 0)
                    {
                        journal.Commit();
                    }
                }

                journal.Commit();
            }
            catch (Exception e)
            {
                writerFailure = e;
            }
        });
        writer.Start();
        var deadline = Stopwatch.StartNew();
        var runs = 0;
        var damage = new List<string>();
        try
        {
            while (runs < 200 && deadline.Elapsed < TimeSpan.FromSeconds(10) && writer.IsAlive)
            {
                runs++;
                Volatile.Write(ref allowance, 384 << 10);
                var from = Math.Max(0, journal.NextOffset - 3);
                if (DumpAll(dir.Path, from, out var visited) is { } problem)
                {
                    damage.Add($"run {runs}: dump from {from}: {problem} after {visited} record(s)");
                }

                if (runs % 10 == 0)
                {
                    Volatile.Write(ref allowance, 384 << 10);
                    var report = JournalInspector.Verify(dir.Path);
                    if (report.ExitCode != 0)
                    {
                        damage.Add($"run {runs}: verify exit {report.ExitCode}: {string.Join("; ", report.Segments.Select(s => s.Problem).OfType<string>())}");
                    }
                }
            }
        }
        finally
        {
            Volatile.Write(ref stop, true);
            writer.Join();
        }

        Assert.Null(writerFailure);
        Assert.True(damage.Count == 0, $"{damage.Count} of {runs} run(s) reported damage on a healthy journal being appended to:\n{string.Join('\n', damage.Take(10))}");
        Assert.True(runs >= 20, $"only {runs} run(s)");
    }

    /// <summary>The lock <see cref="JournalLog"/> holds while it has the journal open: an exclusive flock on journal.lock.</summary>
    private static FileStream HoldLock(string directory) =>
        new(Path.Combine(directory, "journal.lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);

    private static string? DumpAll(string directory, long? from, out long visited)
    {
        var expected = from ?? 0;
        visited = JournalInspector.Dump(directory, from, null, long.MaxValue, r => Assert.Equal(expected++, r.Offset), out var problem);
        return problem;
    }

    /// <summary>A valid journal of <see cref="Records"/> records over small segments, all sealed but the last; returns the last.</summary>
    private static string WriteWithUnsealedTail(string path)
    {
        using (var journal = JournalLog.Open(path, AppendReadTests.Small))
        {
            AppendReadTests.AppendRange(journal, Records);
            RetentionTests.SealAll(journal);
        }

        var segments = JournalFiles.Segments(path);
        Assert.True(segments.Length >= 3, $"{segments.Length} segment(s)");
        var last = segments[^1];
        using (var stream = new FileStream(last, FileMode.Open, FileAccess.ReadWrite))
        {
            stream.Position = 64;
            stream.Write(new byte[64]); // the active segment: no seal yet
        }

        File.Delete(Path.ChangeExtension(last, ".idx"));
        Assert.Equal(0, JournalInspector.Verify(path).ExitCode);
        return last;
    }

    /// <summary>What the writer has stored of record <paramref name="offset"/> at <paramref name="position"/> so far: its length word first, its CRC last.</summary>
    private static void WritePartialRecord(string segment, long position, long offset, string written)
    {
        const int Length = 32 + 200;
        var bytes = new byte[32];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, Length);
        if (written == "all but its CRC")
        {
            BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(8), offset);
            BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(16), DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        }

        using var stream = new FileStream(segment, FileMode.Open, FileAccess.ReadWrite);
        stream.Position = position;
        stream.Write(bytes);
        if (written == "all but its CRC")
        {
            var payload = new byte[200];
            payload.AsSpan().Fill(0x5A);
            stream.Write(payload);
        }
    }

    private static long EndOfRecords(string segment)
    {
        var records = JournalFiles.Records(segment);
        return records.Count == 0 ? JournalFiles.SegmentHeaderSize : records[^1].Position + ((records[^1].Length + 7) & ~7);
    }
}
