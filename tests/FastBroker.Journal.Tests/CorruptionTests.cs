using FastBroker.Journal.Internal;
using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

public class CorruptionTests
{
    private static readonly JournalOptions s_options = AppendReadTests.Small;

    private static TempDirectory JournalWith(int count)
    {
        var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, s_options);
        AppendReadTests.AppendRange(journal, count);
        RetentionTests.SealAll(journal);
        return dir;
    }

    [Fact]
    public void A_flipped_bit_in_the_last_record_drops_that_record_and_reports_it()
    {
        using var dir = JournalWith(3000);
        var active = JournalFiles.Segments(dir.Path)[^1];
        var last = JournalFiles.Records(active)[^1];
        JournalFiles.FlipBit(active, last.Position + last.Length - 1, bit: 3);
        Assert.Equal(2, JournalInspector.Verify(dir.Path).ExitCode);

        using var journal = JournalLog.Open(dir.Path, s_options);
        var dropped = Assert.Single(journal.Recovery.Dropped);
        Assert.Equal(last.Position, dropped.StartPosition);
        Assert.Equal(1, dropped.RecordCount);
        Assert.Equal(2999, dropped.FirstOffset);
        Assert.Equal(2999, journal.NextOffset);
        Assert.Equal(2999, AppendReadTests.ReadAllChecked(journal));
    }

    [Fact]
    public void A_flipped_bit_inside_the_active_segment_drops_it_and_everything_after_as_a_torn_tail()
    {
        using var dir = JournalWith(3000);
        var active = JournalFiles.Segments(dir.Path)[^1];
        var records = JournalFiles.Records(active);
        var victim = records[records.Count / 2];
        JournalFiles.FlipBit(active, victim.Position + 20);

        using var journal = JournalLog.Open(dir.Path, s_options);
        var dropped = Assert.Single(journal.Recovery.Dropped);
        Assert.Equal(victim.Position, dropped.StartPosition);
        Assert.Equal(records.Count - (records.Count / 2), dropped.RecordCount);
        Assert.Equal(victim.Offset, journal.NextOffset);
    }

    [Fact]
    public void A_flipped_bit_in_a_sealed_segment_refuses_to_open_naming_file_and_position()
    {
        using var dir = JournalWith(3000);
        var sealedSegment = JournalFiles.Segments(dir.Path)[1];
        var victim = JournalFiles.Records(sealedSegment)[7];
        JournalFiles.FlipBit(sealedSegment, victim.Position + 40);

        var e = Assert.Throws<JournalCorruptionException>(() => JournalLog.Open(dir.Path, s_options));
        Assert.Equal(sealedSegment, e.FilePath);
        Assert.Equal(victim.Position, e.Position);
        Assert.Equal(victim.Offset, e.ExpectedOffset);
        Assert.Equal(JournalErrorCode.Corruption, e.ErrorCode);
        Assert.Contains(Path.GetFileName(sealedSegment), e.Message, StringComparison.Ordinal);
        Assert.Contains("CRC32C", e.Message, StringComparison.Ordinal);
        Assert.Equal(1, JournalInspector.Verify(dir.Path).ExitCode);

        // Refusing must not have changed anything: the same error again.
        Assert.Throws<JournalCorruptionException>(() => JournalLog.Open(dir.Path, s_options));
    }

    [Fact]
    public void Repair_truncates_at_the_corrupt_record_and_reports_everything_dropped()
    {
        using var dir = JournalWith(3000);
        var segments = JournalFiles.Segments(dir.Path);
        var victim = JournalFiles.Records(segments[1])[7];
        JournalFiles.FlipBit(segments[1], victim.Position + 40);

        using (var journal = JournalLog.Open(dir.Path, s_options with { RepairCorruption = true }))
        {
            Assert.Equal(victim.Offset, journal.NextOffset);
            Assert.Equal(victim.Offset, AppendReadTests.ReadAllChecked(journal));
            Assert.Equal(segments[1], journal.Recovery.Dropped[0].FilePath);
            Assert.Equal(victim.Position, journal.Recovery.Dropped[0].StartPosition);
            Assert.Equal(segments.Length - 2, journal.Recovery.RemovedFiles.Count);
            Assert.Equal(3000 - victim.Offset, journal.Recovery.DroppedRecordCount);
            AppendReadTests.AppendRange(journal, 5);
        }

        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            Assert.True(journal.Recovery.IsClean);
            Assert.Equal(victim.Offset + 5, AppendReadTests.ReadAllChecked(journal));
        }
    }

    [Fact]
    public void A_repair_interrupted_between_unseal_and_zeroing_leaves_a_journal_a_plain_open_accepts_and_reports()
    {
        using var dir = JournalWith(3000);
        var segments = JournalFiles.Segments(dir.Path);
        var records = JournalFiles.Records(segments[1]);
        var victim = records[7];
        JournalFiles.FlipBit(segments[1], victim.Position + 40);

        // The crash: the repair stops between its two steps on the damaged segment.
        var crash = new InvalidOperationException("crash in the middle of the repair");
        var interrupted = s_options with { RepairCorruption = true, RepairStepHook = step => Fail(step == RepairStep.Unsealed, crash) };
        Assert.Same(crash, Assert.Throws<InvalidOperationException>(() => JournalLog.Open(dir.Path, interrupted)));

        using var journal = JournalLog.Open(dir.Path, s_options);
        Assert.True(journal.Recovery.FinishedInterruptedRepair, journal.Recovery.ToString());
        var dropped = journal.Recovery.Dropped[0];
        Assert.Equal(segments[1], dropped.FilePath);
        Assert.Equal(victim.Position, dropped.StartPosition);
        Assert.Equal(victim.Offset, dropped.FirstOffset);
        Assert.Equal(records.Count - 7, dropped.RecordCount);
        Assert.StartsWith("repaired: ", dropped.Reason, StringComparison.Ordinal);
        Assert.Equal(segments[2..], journal.Recovery.RemovedFiles); // the interrupted repair's deletions are reported too
        Assert.Equal(3000 - victim.Offset, journal.Recovery.DroppedRecordCount);
        Assert.Equal(victim.Offset, journal.NextOffset);
        Assert.Equal(victim.Offset, AppendReadTests.ReadAllChecked(journal));
        Assert.Equal(segments[..2], JournalFiles.Segments(dir.Path));
    }

    /// <summary>
    /// Each open that repairs writes its repair log, with the report of a repair an earlier open left unfinished, before
    /// it changes anything; so the reports of repairs that keep being interrupted add up until an open completes, which
    /// reports them all once and removes the log.
    /// </summary>
    [Fact]
    public void Reports_of_interrupted_repairs_add_up_until_an_open_completes_and_are_given_once()
    {
        using var dir = JournalWith(3000);
        var segments = JournalFiles.Segments(dir.Path);
        var victim = JournalFiles.Records(segments[1])[7];
        JournalFiles.FlipBit(segments[1], victim.Position + 40);
        var crash = new InvalidOperationException("crash at the end of the repair");
        var log = Path.Combine(dir.Path, "repair.log");

        // The first open repairs the sealed segment and fails once it is done, before the open ends.
        var repairThenFail = s_options with { RepairCorruption = true, RepairStepHook = step => Fail(step == RepairStep.Zeroed, crash) };
        Assert.Same(crash, Assert.Throws<InvalidOperationException>(() => JournalLog.Open(dir.Path, repairThenFail)));
        Assert.True(File.Exists(log));

        // Then a torn record in what is now the tail, which the second open cuts, failing in the same place.
        var tail = JournalFiles.Records(segments[1])[3];
        JournalFiles.FlipBit(segments[1], tail.Position + 20);
        var cutThenFail = s_options with { RepairStepHook = step => Fail(step == RepairStep.Zeroed, crash) };
        Assert.Same(crash, Assert.Throws<InvalidOperationException>(() => JournalLog.Open(dir.Path, cutThenFail)));

        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            var report = journal.Recovery;
            Assert.True(report.FinishedInterruptedRepair, report.ToString());
            Assert.Equal([victim.Position, .. Enumerable.Repeat(0, segments.Length - 2), tail.Position], report.Dropped.Select(d => (int)d.StartPosition));
            Assert.Equal(segments[2..], report.RemovedFiles);
            Assert.Equal(tail.Offset, report.Dropped[^1].FirstOffset);
            Assert.Equal(3000 - tail.Offset, report.DroppedRecordCount); // each record counted once, by the repair that dropped it
            Assert.Equal(tail.Offset, journal.NextOffset);
            Assert.Equal(tail.Offset, AppendReadTests.ReadAllChecked(journal));
        }

        Assert.False(File.Exists(log), "the open that reported the repairs removed their log");
        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            Assert.True(journal.Recovery.IsClean, journal.Recovery.ToString());
        }
    }

    /// <summary>
    /// verify judges a journal whose repair an open left unfinished as the next open does, which finishes it: the files
    /// the repair deletes left out, the segment it cuts ending at the cut, a damaged tail (exit 2) that open reports, not
    /// corruption; once an open has finished it, intact.
    /// </summary>
    [Theory]
    [InlineData("LogWritten")]
    [InlineData("FilesDeleted")]
    [InlineData("Unsealed")]
    public void Verify_judges_an_unfinished_repair_as_the_open_that_finishes_it(string step)
    {
        using var dir = JournalWith(3000);
        var segments = JournalFiles.Segments(dir.Path);
        var victim = JournalFiles.Records(segments[1])[7];
        JournalFiles.FlipBit(segments[1], victim.Position + 40);
        var crash = new InvalidOperationException("crash during the repair");
        var at = Enum.Parse<RepairStep>(step);
        Assert.Same(crash, Assert.Throws<InvalidOperationException>(() => JournalLog.Open(dir.Path, s_options with { RepairCorruption = true, RepairStepHook = s => Fail(s == at, crash) })));

        var verify = JournalInspector.Verify(dir.Path);
        Assert.True(verify.ExitCode == 2, $"exit {verify.ExitCode}: {verify.PendingRepair}; {string.Join("; ", verify.Segments.Select(s => s.Problem))}");
        Assert.Contains($"reports {3000 - victim.Offset} record(s) dropped and {segments.Length - 2} file(s) removed", verify.PendingRepair, StringComparison.Ordinal);
        Assert.Equal(segments[..2], verify.Segments.Select(s => s.FilePath));
        Assert.Equal((7, false, null), (verify.Segments[1].RecordCount, verify.Segments[1].Sealed, verify.Segments[1].Problem));

        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            Assert.Equal(victim.Offset, journal.NextOffset);
            Assert.Equal(3000 - victim.Offset, journal.Recovery.DroppedRecordCount);
        }

        verify = JournalInspector.Verify(dir.Path);
        Assert.Equal(0, verify.ExitCode);
        Assert.Null(verify.PendingRepair);
    }

    /// <summary>A damaged repair log is refused, naming it, and nothing is changed (its report and steps are unknown).</summary>
    [Fact]
    public void A_damaged_repair_log_refuses_to_open_and_changes_nothing()
    {
        using var dir = JournalWith(3000);
        var segments = JournalFiles.Segments(dir.Path);
        var victim = JournalFiles.Records(segments[^1])[3];
        JournalFiles.FlipBit(segments[^1], victim.Position + 20); // a torn tail an open would cut
        var crash = new InvalidOperationException("crash before the cut");
        Assert.Same(crash, Assert.Throws<InvalidOperationException>(() => JournalLog.Open(dir.Path, s_options with { RepairStepHook = step => Fail(step == RepairStep.FilesDeleted, crash) })));
        var log = Path.Combine(dir.Path, "repair.log");
        JournalFiles.FlipBit(log, 40);
        var before = File.ReadAllBytes(segments[^1]);

        var e = Assert.Throws<JournalException>(() => JournalLog.Open(dir.Path, s_options));
        Assert.Equal(JournalErrorCode.Corruption, e.ErrorCode);
        Assert.Contains(log, e.Message, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllBytes(segments[^1])); // the torn record is still there: not cut
        Assert.Equal(segments, JournalFiles.Segments(dir.Path));
        Assert.Equal(1, JournalInspector.Verify(dir.Path).ExitCode); // verify calls it what open does: refused
    }

    /// <summary>
    /// A damaged repair log's message names what is refused: opening the journal, or truncating it (TruncateFrom), which
    /// refuses it as open does and changes nothing; verify, which refuses nothing, says that both are refused while the
    /// log is there; and dump, which refuses nothing either, shows the files as they are.
    /// </summary>
    [Theory]
    [InlineData("open")]
    [InlineData("TruncateFrom")]
    [InlineData("verify")]
    [InlineData("dump")]
    public void A_damaged_repair_log_is_refused_in_words_that_name_the_operation(string operation)
    {
        using var dir = JournalWith(3000);
        var segments = JournalFiles.Segments(dir.Path);
        var victim = JournalFiles.Records(segments[^1])[3];
        JournalFiles.FlipBit(segments[^1], victim.Position + 20); // a torn tail an open would cut
        var crash = new InvalidOperationException("crash before the cut");
        Assert.Same(crash, Assert.Throws<InvalidOperationException>(() => JournalLog.Open(dir.Path, s_options with { RepairStepHook = step => Fail(step == RepairStep.FilesDeleted, crash) })));
        var log = Path.Combine(dir.Path, "repair.log");
        JournalFiles.FlipBit(log, 40);
        var before = Directory.GetFiles(dir.Path).Order(StringComparer.Ordinal).Select(f => (f, File.ReadAllBytes(f))).ToList();

        string message;
        switch (operation)
        {
            case "open":
                message = Assert.Throws<JournalException>(() => JournalLog.Open(dir.Path, s_options)).Message;
                Assert.Contains("Refusing to open the journal: delete it to open the journal without it", message, StringComparison.Ordinal);
                break;
            case "TruncateFrom":
                var e = Assert.Throws<JournalException>(() => JournalLog.TruncateFrom(dir.Path, s_options, victim.Offset - 10));
                Assert.Equal(JournalErrorCode.Corruption, e.ErrorCode);
                message = e.Message;
                Assert.Contains("Refusing to truncate the journal (TruncateFrom): delete it to truncate the journal without it", message, StringComparison.Ordinal);
                break;
            case "verify":
                var report = JournalInspector.Verify(dir.Path);
                Assert.Equal(1, report.ExitCode);
                message = report.PendingRepair!;
                Assert.Contains("Opening or truncating the journal (TruncateFrom) is refused while it is there: delete it to open the journal without it", message, StringComparison.Ordinal);
                break;
            default:
                var offsets = new List<long>();
                JournalInspector.Dump(dir.Path, null, null, long.MaxValue, r => offsets.Add(r.Offset), out var problem);
                Assert.Equal(victim.Offset, offsets.Count); // the files as they are: up to the torn record
                message = problem!;
                Assert.Contains("CRC32C mismatch", message, StringComparison.Ordinal);
                break;
        }

        Assert.True(operation == "dump" || message.Contains(log, StringComparison.Ordinal), message);
        Assert.True(operation == "open" || !message.Contains("Refusing to open", StringComparison.Ordinal), $"{operation}: {message}");
        Assert.Equal(before, Directory.GetFiles(dir.Path).Order(StringComparer.Ordinal).Select(f => (f, File.ReadAllBytes(f))));
    }

    [Fact]
    public void A_damaged_segment_header_refuses_to_open_at_position_zero()
    {
        using var dir = JournalWith(3000);
        var segment = JournalFiles.Segments(dir.Path)[0];
        JournalFiles.FlipBit(segment, 20);
        var e = Assert.Throws<JournalCorruptionException>(() => JournalLog.Open(dir.Path, s_options));
        Assert.Equal(segment, e.FilePath);
        Assert.Equal(0, e.Position);
    }

    [Fact]
    public void A_damaged_seal_trailer_is_rescanned_and_resealed_not_refused()
    {
        using var dir = JournalWith(3000);
        var segment = JournalFiles.Segments(dir.Path)[0];
        JournalFiles.FlipBit(segment, 70);
        using var journal = JournalLog.Open(dir.Path, s_options);
        Assert.True(journal.Recovery.IsClean);
        Assert.Equal(3000, AppendReadTests.ReadAllChecked(journal));
    }

    [Fact]
    public void A_missing_middle_segment_is_refused_as_a_gap()
    {
        using var dir = JournalWith(3000);
        var segments = JournalFiles.Segments(dir.Path);
        File.Delete(segments[1]);
        var e = Assert.Throws<JournalCorruptionException>(() => JournalLog.Open(dir.Path, s_options));
        Assert.Equal(segments[2], e.FilePath);
        Assert.Contains("previous one ends", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_checksumming_reader_reports_damage_found_after_open()
    {
        using var dir = JournalWith(3000);
        using var journal = JournalLog.Open(dir.Path, s_options with { VerifySealedSegmentsOnOpen = false });
        var segment = JournalFiles.Segments(dir.Path)[0];
        var victim = JournalFiles.Records(segment)[3];
        JournalFiles.FlipBit(segment, victim.Position + 40); // through the file: the shared mapping sees it
        using var reader = journal.OpenReader(ReadStart.Beginning, verifyChecksums: true);
        for (var i = 0; i < 3; i++)
        {
            Assert.True(reader.TryRead(out _));
        }

        var e = Assert.Throws<JournalCorruptionException>(() => reader.TryRead(out _));
        Assert.Equal(victim.Position, e.Position);
    }

    private static void Fail(bool when, Exception crash)
    {
        if (when)
        {
            throw crash;
        }
    }
}
