using System.Globalization;
using FastBroker.Journal.Internal;
using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

public class TruncateFromTests
{
    private static readonly JournalOptions s_options = AppendReadTests.Small;

    private static TempDirectory JournalWith(long count, JournalOptions? options = null)
    {
        var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, options ?? s_options);
        AppendReadTests.AppendRange(journal, count);
        return dir;
    }

    private static long BaseOffsetOf(string segmentPath) => long.Parse(Path.GetFileNameWithoutExtension(segmentPath), CultureInfo.InvariantCulture);

    private static string IndexOf(string segmentPath) => Path.ChangeExtension(segmentPath, ".idx");

    private static long StoredBytesFrom(string directory, long offset) =>
        JournalFiles.Segments(directory).SelectMany(JournalFiles.Records).Where(r => r.Offset >= offset).Sum(r => (long)((r.Length + 7) & ~7));

    private static bool IsUnsealed(string segmentPath) =>
        File.ReadAllBytes(segmentPath).AsSpan(64, 64).IndexOfAnyExcept((byte)0) < 0;

    [Fact]
    public void Truncating_in_the_middle_of_a_segment_drops_every_later_record_and_appends_continue_from_there()
    {
        using var dir = JournalWith(4000);
        var segments = JournalFiles.Segments(dir.Path);
        Assert.True(segments.Length >= 4);
        Assert.True(File.Exists(IndexOf(segments[1])), "a sealed segment has an index file");
        var records = JournalFiles.Records(segments[1]);
        var cut = records[records.Count / 2];
        var offset = cut.Offset;
        var bytes = StoredBytesFrom(dir.Path, offset);

        var dropped = JournalLog.TruncateFrom(dir.Path, s_options, offset);

        Assert.NotNull(dropped);
        Assert.Equal(offset, dropped.FirstOffset);
        Assert.Equal(4000 - offset, dropped.RecordCount);
        Assert.Equal(bytes, dropped.Length);
        Assert.Equal(segments[1], dropped.FilePath);
        Assert.Equal(cut.Position, dropped.StartPosition);
        Assert.Equal(JournalLog.TruncatedNotOnNewPrimary, dropped.Reason);
        Assert.Equal(segments[..2], JournalFiles.Segments(dir.Path));
        Assert.All(segments[1..], s => Assert.False(File.Exists(IndexOf(s)), $"index of {Path.GetFileName(s)} deleted"));
        Assert.True(File.Exists(IndexOf(segments[0])));
        Assert.True(JournalFiles.AllZeroFrom(segments[1], cut.Position), "zeroed from the cut to the end");
        Assert.True(IsUnsealed(segments[1]), "the cut segment is the writable tail again");
        Assert.Equal(records.Take(records.Count / 2), JournalFiles.Records(segments[1]));
        Assert.Null(JournalLog.TruncateFrom(dir.Path, s_options, offset)); // done: nothing more to drop

        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            Assert.True(journal.Recovery.IsClean, journal.Recovery.ToString());
            Assert.Equal(offset, journal.NextOffset);
            Assert.Equal(2, journal.SegmentCount);
            Assert.Equal(offset, AppendReadTests.ReadAllChecked(journal));
            AppendReadTests.AppendRange(journal, 500);
            Assert.Equal(offset + 500, AppendReadTests.ReadAllChecked(journal));
        }

        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            Assert.True(journal.Recovery.IsClean, journal.Recovery.ToString());
            Assert.Equal(offset + 500, journal.NextOffset);
            Assert.Equal(offset + 500, AppendReadTests.ReadAllChecked(journal));
        }
    }

    [Fact]
    public void Truncating_at_a_segment_boundary_deletes_the_later_segments_and_reopens_the_previous_one_as_the_tail()
    {
        using var dir = JournalWith(4000);
        var segments = JournalFiles.Segments(dir.Path);
        var offset = BaseOffsetOf(segments[2]);
        var bytes = StoredBytesFrom(dir.Path, offset);

        var dropped = JournalLog.TruncateFrom(dir.Path, s_options, offset, "test reason");

        Assert.NotNull(dropped);
        Assert.Equal(offset, dropped.FirstOffset);
        Assert.Equal(4000 - offset, dropped.RecordCount);
        Assert.Equal(bytes, dropped.Length);
        Assert.Equal(segments[2], dropped.FilePath);
        Assert.Equal(JournalFiles.SegmentHeaderSize, dropped.StartPosition);
        Assert.Equal("test reason", dropped.Reason);
        Assert.Equal(segments[..2], JournalFiles.Segments(dir.Path));
        Assert.Equal(offset, JournalFiles.Records(segments[1])[^1].Offset + 1);
        Assert.True(IsUnsealed(segments[1]), "the segment before the cut takes appends again");
        Assert.False(File.Exists(IndexOf(segments[1])));

        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            Assert.True(journal.Recovery.IsClean, journal.Recovery.ToString());
            Assert.Equal(offset, journal.NextOffset);
            Assert.Equal(2, journal.SegmentCount);
            AppendReadTests.AppendRange(journal, 4000 - offset);
            Assert.Equal(4000, AppendReadTests.ReadAllChecked(journal));
        }

        // The same records again roll at the same places: the original segment names come back.
        Assert.Equal(segments, JournalFiles.Segments(dir.Path));
    }

    [Fact]
    public void A_former_primary_truncated_at_a_segment_boundary_lines_up_with_the_new_primary_again()
    {
        using var oldPrimaryDir = new TempDirectory();
        using var newPrimaryDir = new TempDirectory();
        long boundary;
        using (var oldPrimary = JournalLog.Open(oldPrimaryDir.Path, s_options))
        using (var newPrimary = JournalLog.Open(newPrimaryDir.Path, s_options))
        {
            // Fill the first segment to leave 1000-1135 bytes free, then a 2 KiB record that does not fit rolls.
            var payload = new byte[100];
            var position = JournalFiles.SegmentHeaderSize;
            var stored = JournalLog.StoredSize(0, 0, payload.Length);
            while (s_options.SegmentSize - position - stored >= 1000)
            {
                Assert.True(oldPrimary.TryAppend(payload, out _));
                position += stored;
            }

            Assert.True(oldPrimary.TryAppend(new byte[2000], out boundary));
            Assert.Equal(2, oldPrimary.SegmentCount);
            AppendReadTests.AppendRange(oldPrimary, 50); // acknowledged by nobody: never reached the standby
            oldPrimary.Commit();

            // The standby has everything before the boundary, then is promoted and takes small records, which fit
            // in its first segment, and then larger ones, which roll.
            Replica.Copy(oldPrimary, newPrimary, until: boundary);
            Assert.Equal(boundary, newPrimary.NextOffset);
            for (var i = 0; i < 20; i++)
            {
                Assert.True(newPrimary.TryAppend(new byte[10], out _));
            }

            AppendReadTests.AppendRange(newPrimary, 1500);
            Assert.Equal(1, JournalFiles.Segments(newPrimaryDir.Path).Count(s => BaseOffsetOf(s) < boundary + 20));
        }

        var dropped = JournalLog.TruncateFrom(oldPrimaryDir.Path, s_options, boundary);
        Assert.NotNull(dropped);
        Assert.Equal(51, dropped.RecordCount);
        using (var oldPrimary = JournalLog.Open(oldPrimaryDir.Path, s_options))
        using (var newPrimary = JournalLog.Open(newPrimaryDir.Path, s_options))
        {
            Assert.Equal(boundary, oldPrimary.NextOffset);
            Replica.Copy(newPrimary, oldPrimary, from: boundary, seed: 5);
            Assert.Equal(newPrimary.NextOffset, oldPrimary.NextOffset);
        }

        Replica.AssertSameFiles(newPrimaryDir.Path, oldPrimaryDir.Path);
    }

    [Fact]
    public void Truncating_at_or_beyond_the_end_changes_nothing_and_returns_null()
    {
        using var dir = JournalWith(1000);
        var before = Directory.GetFiles(dir.Path).Order(StringComparer.Ordinal).Select(f => (f, File.ReadAllBytes(f))).ToArray();

        Assert.Null(JournalLog.TruncateFrom(dir.Path, s_options, 1000));
        Assert.Null(JournalLog.TruncateFrom(dir.Path, s_options, 5000));
        Assert.Null(JournalLog.TruncateFrom(Path.Combine(dir.Path, "no-such-journal"), s_options, 0));

        var after = Directory.GetFiles(dir.Path).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(before.Select(b => b.f), after);
        Assert.All(before, b => Assert.True(b.Item2.AsSpan().SequenceEqual(File.ReadAllBytes(b.f)), b.f));
        using var journal = JournalLog.Open(dir.Path, s_options);
        Assert.True(journal.Recovery.IsClean);
        Assert.Equal(1000, journal.NextOffset);
    }

    [Fact]
    public void Truncating_an_open_journal_is_refused()
    {
        using var dir = new TempDirectory();
        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            AppendReadTests.AppendRange(journal, 100);
            var e = Assert.Throws<JournalException>(() => JournalLog.TruncateFrom(dir.Path, s_options, 10));
            Assert.Contains("already open", e.Message, StringComparison.Ordinal);
            Assert.Equal(100, AppendReadTests.ReadAllChecked(journal));
        }

        Assert.NotNull(JournalLog.TruncateFrom(dir.Path, s_options, 10));
        using var reopened = JournalLog.Open(dir.Path, s_options);
        Assert.Equal(10, reopened.NextOffset);
    }

    [Fact]
    public void Truncating_at_or_before_the_first_offset_leaves_an_empty_journal_starting_at_that_offset()
    {
        var options = s_options with { InitialOffset = 1000 };
        using var dir = JournalWith(3000, options);
        Assert.True(JournalFiles.Segments(dir.Path).Length > 2);

        var all = JournalLog.TruncateFrom(dir.Path, options, 1000);
        Assert.NotNull(all);
        Assert.Equal(3000, all.RecordCount);
        Assert.Equal(1000, all.FirstOffset);
        Assert.Equal(new[] { "00000000000000001000.seg" }, JournalFiles.Segments(dir.Path).Select(s => Path.GetFileName(s)));
        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            Assert.True(journal.Recovery.IsClean, journal.Recovery.ToString());
            Assert.Equal(1000, journal.FirstOffset);
            Assert.Equal(1000, journal.NextOffset);
            AppendReadTests.AppendRange(journal, 20);
        }

        var below = JournalLog.TruncateFrom(dir.Path, options, 400);
        Assert.NotNull(below);
        Assert.Equal(20, below.RecordCount);
        Assert.Equal(1000, below.FirstOffset);
        Assert.Equal(new[] { "00000000000000000400.seg" }, JournalFiles.Segments(dir.Path).Select(s => Path.GetFileName(s)));
        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            Assert.True(journal.Recovery.IsClean, journal.Recovery.ToString());
            Assert.Equal(400, journal.FirstOffset);
            Assert.Equal(400, journal.NextOffset);
            AppendReadTests.AppendRange(journal, 20);
            Assert.Equal(420, AppendReadTests.ReadAllChecked(journal, 400));
        }
    }

    [Fact]
    public void Saved_reader_positions_past_the_cut_move_back_to_it()
    {
        using var dir = new TempDirectory();
        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            AppendReadTests.AppendRange(journal, 3000);
            foreach (var (name, at) in new[] { ("ahead", 2500L), ("behind", 100L) })
            {
                using var reader = journal.OpenReader(name, ReadStart.FromOffset(at));
                reader.SavePosition();
            }
        }

        Assert.NotNull(JournalLog.TruncateFrom(dir.Path, s_options, 2000));
        using var reopened = JournalLog.Open(dir.Path, s_options);
        Assert.True(reopened.TryGetSavedPosition("ahead", out var ahead));
        Assert.Equal(2000, ahead);
        Assert.True(reopened.TryGetSavedPosition("behind", out var behind));
        Assert.Equal(100, behind);
    }

    [Fact]
    public void A_truncation_interrupted_after_deleting_the_highest_segments_reopens_contiguous_and_completes_when_rerun()
    {
        using var dir = JournalWith(4000);
        var segments = JournalFiles.Segments(dir.Path);
        var offset = JournalFiles.Records(segments[1])[10].Offset;

        // The first steps of TruncateFrom, then a crash: the two highest segments are gone, the cut not yet made.
        foreach (var s in segments[^2..])
        {
            File.Delete(IndexOf(s));
            File.Delete(s);
        }

        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            Assert.True(journal.Recovery.IsClean, journal.Recovery.ToString());
            Assert.Equal(BaseOffsetOf(segments[^2]), journal.NextOffset);
            Assert.Equal(journal.NextOffset, AppendReadTests.ReadAllChecked(journal));
        }

        var dropped = JournalLog.TruncateFrom(dir.Path, s_options, offset);
        Assert.NotNull(dropped);
        Assert.Equal(BaseOffsetOf(segments[^2]) - offset, dropped.RecordCount);
        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            Assert.True(journal.Recovery.IsClean, journal.Recovery.ToString());
            Assert.Equal(offset, journal.NextOffset);
        }
    }

    [Fact]
    public void A_damaged_sealed_segment_before_the_cut_is_refused_and_nothing_changes()
    {
        using var dir = JournalWith(4000);
        var segments = JournalFiles.Segments(dir.Path);
        var records = JournalFiles.Records(segments[1]);
        JournalFiles.FlipBit(segments[1], records[5].Position + 40);
        var before = Directory.GetFiles(dir.Path).Order(StringComparer.Ordinal).Select(f => (f, File.ReadAllBytes(f))).ToArray();

        var e = Assert.Throws<JournalCorruptionException>(() => JournalLog.TruncateFrom(dir.Path, s_options, records[20].Offset));
        Assert.Equal(segments[1], e.FilePath);
        Assert.Equal(records[5].Position, e.Position);
        Assert.Equal(records[5].Offset, e.ExpectedOffset);
        Assert.All(before, b => Assert.True(File.Exists(b.f) && b.Item2.AsSpan().SequenceEqual(File.ReadAllBytes(b.f)), b.f));
    }

    /// <summary>
    /// A standby steps down with <see cref="JournalLog.TruncateFrom(string, JournalOptions, long)"/> on a journal whose
    /// repair an open left unfinished in its repair log (here a repaired sealed segment, the open stopped at a step). The
    /// next open finishes that repair, so the truncation must not refuse the damage the repair cuts, nor report records
    /// the repair drops: it finishes the repair's steps first and leaves the log for that open to report. Every record is
    /// reported dropped once, by the truncation or by the open, and the journal ends where the earlier cut puts it.
    /// </summary>
    [Theory]
    [InlineData("LogWritten", "before the damage")]
    [InlineData("LogWritten", "after the damage")]
    [InlineData("LogWritten", "in a later segment")]
    [InlineData("FilesDeleted", "after the damage")]
    [InlineData("FilesDeleted", "in a later segment")]
    public void Truncating_a_journal_whose_repair_an_open_left_unfinished_finishes_that_repair_first(string step, string where)
    {
        using var dir = JournalWith(4000);
        var segments = JournalFiles.Segments(dir.Path);
        Assert.True(segments.Length >= 4 && File.Exists(IndexOf(segments[1])), "segment 1 is sealed");
        var victim = JournalFiles.Records(segments[1])[7];
        JournalFiles.FlipBit(segments[1], victim.Position + 40);
        var crash = new InvalidOperationException("crash during the repair");
        var at = Enum.Parse<RepairStep>(step);
        var repairing = s_options with { RepairCorruption = true, RepairStepHook = s => Fail(s == at, crash) };
        Assert.Same(crash, Assert.Throws<InvalidOperationException>(() => JournalLog.Open(dir.Path, repairing)));
        var offset = where switch
        {
            "before the damage" => victim.Offset - 3,
            "after the damage" => victim.Offset + 20,
            _ => BaseOffsetOf(segments[2]) + 10,
        };

        var dropped = JournalLog.TruncateFrom(dir.Path, s_options, offset);

        using var journal = JournalLog.Open(dir.Path, s_options);
        var report = journal.Recovery;
        var context = $"truncation: {dropped?.ToString() ?? "nothing"}; open: {report}";
        Assert.True(report.FinishedInterruptedRepair, context);
        Assert.Equal(Math.Min(offset, victim.Offset), journal.NextOffset);
        Assert.True((dropped?.RecordCount ?? 0) + report.DroppedRecordCount == 4000 - journal.NextOffset, $"records reported dropped twice: {context}");
        Assert.Equal(journal.NextOffset, AppendReadTests.ReadAllChecked(journal));
    }

    private static void Fail(bool when, Exception crash)
    {
        if (when)
        {
            throw crash;
        }
    }
}
