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

    /// <summary>A journal of <paramref name="records"/> records over small segments, all sealed.</summary>
    private static void WriteSealed(string path, int records)
    {
        using var journal = JournalLog.Open(path, AppendReadTests.Small);
        AppendReadTests.AppendRange(journal, records);
        RetentionTests.SealAll(journal);
    }
}
