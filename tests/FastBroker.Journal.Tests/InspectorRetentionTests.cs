using System.Globalization;
using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

/// <summary>
/// dump and verify when a segment file they listed is gone by the time they open it: retention of the open journal
/// removed the oldest segment (skipped, said in the result, the rest read as usual), or anything else (an error that
/// names the file, never a raw <see cref="FileNotFoundException"/>). The removal happens from a seam between the listing
/// and the open (<see cref="JournalInspector.t_beforeSegmentOpen"/>), by the journal's own retention where it is one.
/// </summary>
public class InspectorRetentionTests
{
    private const int Records = 3000;

    [Fact]
    public void A_segment_retention_removes_before_it_is_read_at_the_oldest_end_of_an_open_journal_is_skipped()
    {
        using var dir = new TempDirectory();
        using var journal = OpenWithSealedSegments(dir.Path);
        var segments = JournalFiles.Segments(dir.Path);
        var bases = segments.Select(BaseOffset).ToArray();

        // dump: retention removes the oldest segment after the listing, before it is opened.
        var visited = new List<long>();
        var problem = WithHook(segments[0], () => Assert.Equal(1, journal.TruncateBefore(bases[1])), () =>
        {
            var n = JournalInspector.Dump(dir.Path, null, null, long.MaxValue, r => visited.Add(r.Offset), out var p, out var open, out var removed);
            Assert.True(open, "the journal is open");
            Assert.Equal([segments[0]], removed);
            Assert.Equal(visited.Count, n);
            return p;
        });
        Assert.True(problem is null, $"dump stopped at: {problem}");
        Assert.False(File.Exists(segments[0]), "retention removed the oldest segment");
        Assert.Equal(Enumerable.Range((int)bases[1], Records - (int)bases[1]).Select(i => (long)i), visited);

        // dump from an offset in the segment removed: from the next one's first record.
        visited.Clear();
        WithHook(segments[1], () => Assert.Equal(1, journal.TruncateBefore(bases[2])), () =>
        {
            JournalInspector.Dump(dir.Path, bases[1] + 5, null, 10, r => visited.Add(r.Offset), out var p, out _, out var removed);
            Assert.Null(p);
            Assert.Equal([segments[1]], removed);
            return p;
        });
        Assert.Equal(Enumerable.Range((int)bases[2], 10).Select(i => (long)i), visited);

        // verify: the segment removed is left out, the rest checks out.
        var report = WithHook(segments[2], () => Assert.Equal(1, journal.TruncateBefore(bases[3])), () => JournalInspector.Verify(dir.Path));
        var context = $"exit {report.ExitCode}: {string.Join("; ", report.Segments.Select(s => s.Problem).OfType<string>())}";
        Assert.True(report.ExitCode == 0, context);
        Assert.True(report.JournalOpen, context);
        Assert.Equal([segments[2]], report.RemovedWhileReading);
        Assert.Equal(segments[3..], report.Segments.Select(s => s.FilePath));
        Assert.Equal(Records - bases[3], report.RecordCount);
    }

    [Fact]
    public void A_segment_removed_while_older_ones_remain_is_an_error_naming_it()
    {
        using var dir = new TempDirectory();
        using var journal = OpenWithSealedSegments(dir.Path);
        var segments = JournalFiles.Segments(dir.Path);
        var bases = segments.Select(BaseOffset).ToArray();

        long visited = 0;
        var error = WithHook(segments[1], () => File.Delete(segments[1]), () => Assert.Throws<JournalSegmentRemovedException>(
            () => JournalInspector.Dump(dir.Path, null, null, long.MaxValue, _ => visited++, out _, out _, out _)));
        Assert.Equal(segments[1], error.SegmentPath);
        Assert.Contains($"{Path.GetFileName(segments[1])}: the segment file was removed while the journal was being read, yet an older segment file ({Path.GetFileName(segments[0])}) is still there", error.Message, StringComparison.Ordinal);
        Assert.Equal(bases[1], visited); // the records before it

        var verifyError = WithHook(segments[2], () => File.Delete(segments[2]), () => Assert.Throws<JournalSegmentRemovedException>(() => JournalInspector.Verify(dir.Path)));
        Assert.Equal(segments[2], verifyError.SegmentPath);
    }

    [Fact]
    public void A_segment_removed_from_a_journal_no_process_has_open_is_an_error_naming_it()
    {
        using var dir = new TempDirectory();
        OpenWithSealedSegments(dir.Path).Dispose();
        var segments = JournalFiles.Segments(dir.Path);

        var error = WithHook(segments[0], () => File.Delete(segments[0]), () => Assert.Throws<JournalSegmentRemovedException>(
            () => JournalInspector.Dump(dir.Path, null, null, long.MaxValue, _ => { }, out _, out _, out _)));
        Assert.Contains($"{Path.GetFileName(segments[0])}: the segment file was removed while the journal was being read, and no process has the journal open", error.Message, StringComparison.Ordinal);

        var verifyError = WithHook(segments[1], () => File.Delete(segments[1]), () => Assert.Throws<JournalSegmentRemovedException>(() => JournalInspector.Verify(dir.Path)));
        Assert.Equal(segments[1], verifyError.SegmentPath);
        Assert.Contains("no process has the journal open", verifyError.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// A visitor that throws its own <see cref="FileNotFoundException"/> (its output file cannot be found, say) ends the
    /// dump with that exception, as it is: no segment file was removed, so it is neither skipped as retention nor
    /// <see cref="JournalSegmentRemovedException"/>, whether the journal is open or not and whatever file it names, one
    /// of the journal's segment files included.
    /// </summary>
    [Theory]
    [InlineData(true, false)]
    [InlineData(false, false)]
    [InlineData(true, true)]
    public void A_file_not_found_the_visitor_throws_is_the_visitors_error_not_a_segment_removed(bool open, bool namesASegment)
    {
        using var dir = new TempDirectory();
        var journal = OpenWithSealedSegments(dir.Path);
        if (!open)
        {
            journal.Dispose();
        }

        try
        {
            var segments = JournalFiles.Segments(dir.Path);
            var missing = namesASegment ? segments[0] : Path.Combine(dir.Path, "out", "dump.txt");
            var own = new FileNotFoundException("the visitor's output file is gone", missing);
            long visited = 0;
            var thrown = Record.Exception(() => JournalInspector.Dump(dir.Path, null, null, long.MaxValue, _ =>
            {
                if (++visited == 10)
                {
                    throw own;
                }
            }, out _, out _, out _));
            Assert.True(ReferenceEquals(own, thrown), $"expected the visitor's own exception, got {thrown?.GetType().Name}: {thrown?.Message}");
            Assert.Equal(10, visited);
            Assert.All(segments, s => Assert.True(File.Exists(s), s));
        }
        finally
        {
            journal.Dispose();
        }
    }

    /// <summary>A journal of <see cref="Records"/> records in at least five segments, all sealed but the last, left open.</summary>
    private static JournalLog OpenWithSealedSegments(string directory)
    {
        var journal = JournalLog.Open(directory, AppendReadTests.Small);
        var payload = new byte[100]; // about 480 records a 64 KiB segment
        for (var i = 0; i < Records; i++)
        {
            Assert.True(journal.TryAppend(payload, out _));
        }

        journal.Commit();
        Eventually.True(() => Directory.GetFiles(directory, "*.idx").Length >= journal.SegmentCount - 1, "closed segments get sealed by the flusher");
        Assert.True(journal.SegmentCount >= 5, $"{journal.SegmentCount} segments");
        return journal;
    }

    /// <summary>Runs <paramref name="inspect"/> with <paramref name="remove"/> run once, when it is about to open <paramref name="segment"/>.</summary>
    private static T WithHook<T>(string segment, Action remove, Func<T> inspect)
    {
        var ran = false;
        JournalInspector.t_beforeSegmentOpen = path =>
        {
            if (path == segment && !ran)
            {
                ran = true;
                remove();
            }
        };
        try
        {
            var result = inspect();
            Assert.True(ran, $"the inspection opened {Path.GetFileName(segment)}");
            return result;
        }
        finally
        {
            JournalInspector.t_beforeSegmentOpen = null;
        }
    }

    private static long BaseOffset(string segment) => long.Parse(Path.GetFileNameWithoutExtension(segment), CultureInfo.InvariantCulture);
}
