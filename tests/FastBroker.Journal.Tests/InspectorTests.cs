using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

public class InspectorTests
{
    [Fact]
    public void Verify_reports_an_intact_journal_with_exit_code_zero()
    {
        using var dir = new TempDirectory();
        using (var journal = JournalLog.Open(dir.Path, AppendReadTests.Small))
        {
            AppendReadTests.AppendRange(journal, 3000);
            RetentionTests.SealAll(journal);
        }

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
}
