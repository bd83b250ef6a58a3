using FastBroker.Journal.Internal;
using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

public class InspectorTests
{
    [Fact]
    public void Verify_reports_an_intact_journal_with_exit_code_zero()
    {
        using var dir = new TempDirectory();
        WriteSealed(dir.Path, 3000);

        var report = JournalInspector.Verify(dir.Path);
        Assert.Equal(0, report.ExitCode);
        Assert.Equal(3000, report.RecordCount);
        Assert.All(report.Segments.SkipLast(1), s => Assert.True(s.Sealed));
        Assert.All(report.Segments, s => Assert.Null(s.Problem));
    }

    [Fact]
    public void Dump_starts_at_an_offset_or_a_time_and_stops_after_count()
    {
        using var dir = new TempDirectory();
        const long T0 = 1_700_000_000_000;
        using (var journal = JournalLog.Open(dir.Path, AppendReadTests.Small))
        {
            for (long i = 0; i < 3000; i++)
            {
                Assert.True(journal.TryAppend("k"u8, default, AppendReadTests.PayloadFor(i), RecordFlags.None, T0 + i, out _));
            }

            journal.Commit();
        }

        var offsets = new List<long>();
        Assert.Equal(5, JournalInspector.Dump(dir.Path, 1234, null, 5, r => offsets.Add(r.Offset), out var problem));
        Assert.Null(problem);
        Assert.Equal([1234, 1235, 1236, 1237, 1238], offsets);

        offsets.Clear();
        Assert.Equal(3, JournalInspector.Dump(dir.Path, null, T0 + 2500, 3, r => offsets.Add(r.Offset), out problem));
        Assert.Equal([2500, 2501, 2502], offsets);

        Assert.Equal(3000, JournalInspector.Dump(dir.Path, null, null, long.MaxValue, _ => { }, out problem));
    }

    [Fact]
    public void Dump_stops_at_a_damaged_record_and_says_where()
    {
        using var dir = new TempDirectory();
        using (var journal = JournalLog.Open(dir.Path, AppendReadTests.Small))
        {
            AppendReadTests.AppendRange(journal, 100);
        }

        var segment = JournalFiles.Segments(dir.Path)[0];
        var victim = JournalFiles.Records(segment)[50];
        JournalFiles.FlipBit(segment, victim.Position + 33);
        Assert.Equal(50, JournalInspector.Dump(dir.Path, null, null, long.MaxValue, _ => { }, out var problem));
        Assert.Contains($"byte {victim.Position}", problem, StringComparison.Ordinal);
        Assert.Equal(2, JournalInspector.Verify(dir.Path).ExitCode);
    }

    /// <summary>
    /// Verify's verdict must be what opening the journal does: exit 2 promises that open truncates a damaged tail, so
    /// damage that open refuses (a gap after a sealed segment, a damaged identity block, a header whose base offset
    /// disagrees with the file name, a sealed segment whose file is shorter than its seal says) must be exit 1, even when
    /// only unsealed segments follow it.
    /// </summary>
    [Theory]
    [InlineData("gap after a sealed segment")]
    [InlineData("damaged identity block")]
    [InlineData("base offset not the file name")]
    [InlineData("sealed segment file cut short")]
    public void Verify_calls_corrupt_what_open_refuses_even_in_the_unsealed_last_segment(string damage)
    {
        using var dir = new TempDirectory();
        WriteSealed(dir.Path, 3000);

        var segments = JournalFiles.Segments(dir.Path);
        Assert.True(segments.Length >= 3);
        var last = segments[^1];
        switch (damage)
        {
            case "gap after a sealed segment":
                File.Delete(segments[^2]);
                File.Delete(Path.ChangeExtension(segments[^2], ".idx"));
                break;
            case "damaged identity block":
                JournalFiles.FlipBit(last, 40, bit: 2); // the creation time: the header CRC fails
                break;
            case "sealed segment file cut short":
                // A damaged copy: the file ends at a record boundary before the end its seal records.
                using (var stream = new FileStream(segments[^2], FileMode.Open, FileAccess.ReadWrite))
                {
                    stream.SetLength(JournalFiles.Records(segments[^2])[10].Position);
                }

                break;
            default:
                var renamed = Path.Combine(dir.Path, $"{long.Parse(Path.GetFileNameWithoutExtension(last), System.Globalization.CultureInfo.InvariantCulture) + 1:D20}.seg");
                File.Move(last, renamed);
                break;
        }

        var report = JournalInspector.Verify(dir.Path); // first: open may restore a short file's length
        Assert.ThrowsAny<JournalException>(() => JournalLog.Open(dir.Path, AppendReadTests.Small).Dispose());
        Assert.True(report.IsCorrupt, string.Join("; ", report.Segments.Select(s => s.Problem)));
        Assert.Equal(1, report.ExitCode);
    }

    [Fact]
    public void Verify_calls_a_gap_after_an_unsealed_segment_a_damaged_tail_as_open_does()
    {
        using var dir = new TempDirectory();
        WriteSealed(dir.Path, 3000);

        // The last two segments unsealed, and the records at the end of the first of them lost: a lost tail.
        var segments = JournalFiles.Segments(dir.Path);
        var previous = segments[^2];
        using (var stream = new FileStream(previous, FileMode.Open, FileAccess.ReadWrite))
        {
            stream.Position = 64;
            stream.Write(new byte[64]);
            var records = JournalFiles.Records(previous);
            stream.Position = records[^1].Position;
            stream.Write(new byte[records[^1].Length]);
        }

        File.Delete(Path.ChangeExtension(previous, ".idx"));
        Assert.Equal(2, JournalInspector.Verify(dir.Path).ExitCode);
        using var reopened = JournalLog.Open(dir.Path, AppendReadTests.Small);
        Assert.NotEmpty(reopened.Recovery.Dropped);
    }

    /// <summary>
    /// An operator runs verify to decide whether to open a damaged journal, so its lines, totals and exit status must
    /// describe what the open then does: a file open removes (a lost tail, or any file after a torn or lost tail, even
    /// when its offsets line up) is shown as removed with its records counted as dropped, a torn tail shows the records
    /// open drops from its cut, and the totals are the open's <see cref="RecoveryReport"/>.
    /// </summary>
    [Theory]
    [InlineData("garbage after the last record")]
    [InlineData("torn record")]
    [InlineData("blank header never synced")]
    [InlineData("last records lost")]
    [InlineData("blank last file")]
    public void Verify_shows_the_files_open_removes_after_a_torn_or_lost_tail_and_the_records_it_reports_dropped(string damage)
    {
        using var dir = new TempDirectory();
        const int Count = 4500;
        WriteSealed(dir.Path, Count);
        var segments = JournalFiles.Segments(dir.Path);

        // The damaged segment: with room after its last record for the garbage case and two files after it, unsealed with
        // every later one (a power loss before the flusher sealed them).
        var k = Array.FindIndex(segments, 1, s => EndOfRecords(s) + 16 <= new FileInfo(s).Length);
        Assert.InRange(k, 1, segments.Length - 3);
        var damaged = segments[k];
        foreach (var s in segments[k..])
        {
            Zero(s, 64, 64);
            File.Delete(Path.ChangeExtension(s, ".idx"));
        }

        var records = JournalFiles.Records(damaged);
        switch (damage)
        {
            case "garbage after the last record":
                Zero(damaged, new FileInfo(damaged).Length - 8, 8, 0xAB); // the later files' offsets still line up
                break;
            case "torn record":
                JournalFiles.FlipBit(damaged, records[records.Count / 2].Position + 20);
                break;
            case "blank header never synced":
                Zero(damaged, 0, 64);
                break;
            case "last records lost":
                Zero(damaged, records[^3].Position, (int)(EndOfRecords(damaged) - records[^3].Position)); // the next file starts after a gap
                break;
            default:
                File.WriteAllBytes(Path.Combine(dir.Path, $"{Count:D20}.seg"), new byte[AppendReadTests.Small.SegmentSize]);
                break;
        }

        var verify = JournalInspector.Verify(dir.Path); // before open changes anything
        using var journal = JournalLog.Open(dir.Path, AppendReadTests.Small);
        var report = journal.Recovery;
        var lines = string.Join("\n", verify.Segments.Select(s => $"{Path.GetFileName(s.FilePath)} records {s.RecordCount}: {s.Problem ?? "ok"}"));
        var context = $"{damage}\nverify (exit {verify.ExitCode}):\n{lines}\nopen: {report}";
        Assert.False(report.IsClean, context);
        Assert.True(verify.ExitCode == 2, context);
        foreach (var line in verify.Segments)
        {
            var droppedHere = report.Dropped.Where(d => d.FilePath == line.FilePath).Sum(d => d.RecordCount);
            var name = Path.GetFileName(line.FilePath);
            if (report.RemovedFiles.Contains(line.FilePath))
            {
                Assert.True(line.Problem?.Contains("open removes this file", StringComparison.Ordinal) == true, $"{name} is removed by open, but verify says: {line.Problem ?? "ok"}\n{context}");
                Assert.True(line.RecordCount == droppedHere, $"{name}: verify counts {line.RecordCount} record(s), open reports {droppedHere} dropped\n{context}");
                Assert.True(droppedHere == 0 || line.Problem!.Contains($"its {droppedHere} record(s) reported dropped", StringComparison.Ordinal), $"{name}: {line.Problem}\n{context}");
            }
            else if (droppedHere > 0)
            {
                Assert.True(line.Problem?.Contains($"open cuts the segment here, its {droppedHere} record(s) from there reported dropped", StringComparison.Ordinal) == true, $"{name} is cut by open, but verify says: {line.Problem ?? "ok"}\n{context}");
            }
            else
            {
                Assert.True(line.Problem is null, $"{name} is kept whole by open, but verify says: {line.Problem}\n{context}");
            }
        }

        // The totals are the open's report, and what verify does not count as dropped is what the journal keeps.
        Assert.Equal(report.RemovedFiles, verify.RemovedFiles);
        Assert.Equal(verify.Segments.Where(s => s.RemovedByOpen).Select(s => s.FilePath), verify.RemovedFiles);
        Assert.Equal(report.DroppedRecordCount, verify.DroppedRecordCount);
        Assert.Equal(journal.NextOffset - journal.FirstOffset, verify.Segments.Where(s => !s.RemovedByOpen).Sum(s => (long)s.RecordCount));
        Assert.Equal(journal.NextOffset - journal.FirstOffset, AppendReadTests.ReadAllChecked(journal));
    }

    /// <summary>
    /// A repair that an open left unfinished in its repair log (here of a sealed segment, stopped before any step or after
    /// the deletions) is finished by the next open whatever its options: the records it drops are gone. dump shows what
    /// the journal holds, so it shows none of them, from the start or from an offset in a file the repair deletes, and
    /// every record the open keeps.
    /// </summary>
    [Theory]
    [InlineData("LogWritten")]
    [InlineData("FilesDeleted")]
    public void Dump_leaves_out_the_records_an_unfinished_repair_drops(string step)
    {
        using var dir = new TempDirectory();
        WriteSealed(dir.Path, 3000);
        var segments = JournalFiles.Segments(dir.Path);
        var victim = JournalFiles.Records(segments[1])[7];
        var later = JournalFiles.Records(segments[2])[5].Offset; // in a file the repair deletes
        JournalFiles.FlipBit(segments[1], victim.Position + 40);
        var crash = new InvalidOperationException("crash during the repair");
        var at = Enum.Parse<RepairStep>(step);
        var repairing = AppendReadTests.Small with { RepairCorruption = true, RepairStepHook = s => Crash(s == at, crash) };
        Assert.Same(crash, Assert.Throws<InvalidOperationException>(() => JournalLog.Open(dir.Path, repairing)));

        var fromStart = new List<long>();
        JournalInspector.Dump(dir.Path, null, null, long.MaxValue, r => fromStart.Add(r.Offset), out var startProblem);
        var fromLater = new List<long>();
        JournalInspector.Dump(dir.Path, later, null, long.MaxValue, r => fromLater.Add(r.Offset), out var laterProblem);

        using var journal = JournalLog.Open(dir.Path, AppendReadTests.Small);
        Assert.True(journal.Recovery.FinishedInterruptedRepair, journal.Recovery.ToString());
        Assert.True(fromLater.Count == 0, $"dump from {later} showed {fromLater.Count} record(s) ({laterProblem ?? "no problem"}) though the open keeps [0, {journal.NextOffset})");
        Assert.True(fromStart.SequenceEqual(Enumerable.Range(0, (int)journal.NextOffset).Select(i => (long)i)), $"dump from the start showed {fromStart.Count} record(s), stopped: {startProblem ?? "no"}; the open keeps {journal.NextOffset}");
        Assert.Null(startProblem);
    }

    /// <summary>
    /// dump shows the records up to the first damage open would cut, remove or refuse (a torn tail, a lost tail, a gap
    /// between segments, records missing from a sealed segment) and says where and why it stopped: never a record after
    /// it, and never silently, also from an offset just past the damage. It changes no file.
    /// </summary>
    [Theory]
    [InlineData("garbage after the last record")]
    [InlineData("last records lost")]
    [InlineData("gap after a sealed segment")]
    [InlineData("records lost in a sealed segment")]
    [InlineData("torn record")]
    [InlineData("blank header never synced")]
    public void Dump_stops_at_a_torn_or_lost_tail_or_a_gap_and_says_where(string damage)
    {
        using var dir = new TempDirectory();
        WriteSealed(dir.Path, 4500);
        var segments = JournalFiles.Segments(dir.Path);
        var k = Array.FindIndex(segments, 1, s => EndOfRecords(s) + 16 <= new FileInfo(s).Length);
        Assert.InRange(k, 1, segments.Length - 3);
        var damaged = segments[k];
        var records = JournalFiles.Records(damaged);
        if (damage is not ("gap after a sealed segment" or "records lost in a sealed segment"))
        {
            foreach (var s in segments[k..])
            {
                Zero(s, 64, 64); // unsealed, as after a power loss before the flusher sealed them
                File.Delete(Path.ChangeExtension(s, ".idx"));
            }
        }

        // The first offset dump must not show, and what its reason must say.
        long stop;
        string why;
        switch (damage)
        {
            case "garbage after the last record":
                Zero(damaged, new FileInfo(damaged).Length - 8, 8, 0xAB); // the later files' offsets still line up
                (stop, why) = (records[^1].Offset + 1, $"non-zero bytes after the last record at byte {EndOfRecords(damaged)}");
                break;
            case "last records lost":
                Zero(damaged, records[^3].Position, (int)(EndOfRecords(damaged) - records[^3].Position));
                (stop, why) = (records[^3].Offset, $"starts at offset {records[^1].Offset + 1} but the previous segment ends at {records[^3].Offset}");
                break;
            case "gap after a sealed segment":
                File.Delete(damaged);
                File.Delete(Path.ChangeExtension(damaged, ".idx"));
                (stop, why) = (records[0].Offset, $"starts at offset {records[^1].Offset + 1} but the previous segment ends at {records[0].Offset}");
                break;
            case "records lost in a sealed segment":
                Zero(damaged, records[^3].Position, (int)(EndOfRecords(damaged) - records[^3].Position));
                (stop, why) = (records[^3].Offset, $"end of data at byte {records[^3].Position} (offset {records[^3].Offset}; sealed with {records.Count} records)");
                break;
            case "torn record":
                JournalFiles.FlipBit(damaged, records[records.Count / 2].Position + 20);
                (stop, why) = (records[records.Count / 2].Offset, $"CRC32C mismatch at byte {records[records.Count / 2].Position}");
                break;
            default:
                Zero(damaged, 0, 64);
                (stop, why) = (records[0].Offset, "bad segment header");
                break;
        }

        var before = Directory.GetFiles(dir.Path).Order(StringComparer.Ordinal).Select(f => (f, File.ReadAllBytes(f))).ToList();
        var where = Path.GetFileName(damage is "gap after a sealed segment" or "last records lost" ? segments[k + 1] : damaged); // a gap: the later file
        foreach (var from in new long?[] { null, stop - 2, stop + 1 })
        {
            var offsets = new List<long>();
            var visited = JournalInspector.Dump(dir.Path, from, null, long.MaxValue, r => offsets.Add(r.Offset), out var problem);
            var context = $"{damage}, dump from {from?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "the start"}: {visited} record(s) [{offsets.FirstOrDefault()}..{offsets.LastOrDefault()}], stopped: {problem ?? "no problem"}";
            var first = from ?? 0;
            Assert.True(offsets.SequenceEqual(Enumerable.Range(0, (int)Math.Max(0, stop - first)).Select(i => first + i)), $"expected [{first}, {stop}); {context}");
            Assert.Equal(offsets.Count, visited);
            Assert.True(problem is not null && problem.Contains(where, StringComparison.Ordinal) && problem.Contains(why, StringComparison.Ordinal), $"expected a problem naming {where} and '{why}'; {context}");
        }

        Assert.Equal(before, Directory.GetFiles(dir.Path).Order(StringComparer.Ordinal).Select(f => (f, File.ReadAllBytes(f))));

        // Where open keeps the journal (a torn or lost tail), it keeps exactly the records dump showed.
        if (damage is not ("gap after a sealed segment" or "records lost in a sealed segment"))
        {
            using var journal = JournalLog.Open(dir.Path, AppendReadTests.Small);
            Assert.Equal(stop, journal.NextOffset);
        }
    }

    private static void Crash(bool when, Exception crash)
    {
        if (when)
        {
            throw crash;
        }
    }

    /// <summary>The byte after the last record's padding (the header's end when there is none).</summary>
    private static long EndOfRecords(string segment)
    {
        var records = JournalFiles.Records(segment);
        return records.Count == 0 ? JournalFiles.SegmentHeaderSize : records[^1].Position + ((records[^1].Length + 7) & ~7);
    }

    /// <summary>Overwrites <paramref name="length"/> bytes at <paramref name="position"/> with <paramref name="value"/>.</summary>
    private static void Zero(string path, long position, int length, byte value = 0)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        stream.Position = position;
        var bytes = new byte[length];
        bytes.AsSpan().Fill(value);
        stream.Write(bytes);
    }

    /// <summary>A journal of <paramref name="records"/> records over small segments, all sealed.</summary>
    private static void WriteSealed(string path, int records)
    {
        using var journal = JournalLog.Open(path, AppendReadTests.Small);
        AppendReadTests.AppendRange(journal, records);
        RetentionTests.SealAll(journal);
    }
}
