using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

public class InitialOffsetTests
{
    private const long Start = 1_000_000;
    private static readonly JournalOptions s_options = AppendReadTests.Small with { InitialOffset = Start };

    [Fact]
    public void A_new_journal_starts_at_the_initial_offset_and_reads_seeks_and_reopens_there()
    {
        using var dir = new TempDirectory();
        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            Assert.Equal(Start, journal.FirstOffset);
            Assert.Equal(Start, journal.NextOffset);
            Assert.Equal(Start, journal.DurableOffset);
            Assert.Equal(Start, journal.Recovery.FirstOffset);
            Assert.Equal(Start, journal.Recovery.NextOffset);
            Assert.Equal("00000000000001000000.seg", Path.GetFileName(Assert.Single(JournalFiles.Segments(dir.Path))));
            using (var empty = journal.OpenReader(ReadStart.Beginning))
            {
                Assert.Equal(Start, empty.NextOffset);
                Assert.False(empty.TryRead(out _));
            }

            for (long i = 0; i < 4000; i++)
            {
                Assert.True(journal.TryAppend(default, default, AppendReadTests.PayloadFor(Start + i), RecordFlags.None, Replica.T0 + (i * 10), out var offset));
                Assert.Equal(Start + i, offset);
            }

            journal.Commit();
            Assert.True(journal.SegmentCount > 3, "rolls");
            Assert.Equal(Start, journal.FirstOffset);
            Assert.Equal(Start + 4000, AppendReadTests.ReadAllChecked(journal, 0)); // below the first offset: starts at it
            AssertSeeks(journal);
        }

        // Reopened (the option no longer matters: the segments say where the journal is).
        using (var journal = JournalLog.Open(dir.Path, AppendReadTests.Small))
        {
            Assert.True(journal.Recovery.IsClean, journal.Recovery.ToString());
            Assert.Equal(Start, journal.FirstOffset);
            Assert.Equal(Start + 4000, journal.NextOffset);
            Assert.Equal(Start + 4000, AppendReadTests.ReadAllChecked(journal, Start));
            AssertSeeks(journal);
            AppendReadTests.AppendRange(journal, 10);
            Assert.Equal(Start + 4010, AppendReadTests.ReadAllChecked(journal, Start + 3990));
        }

        Assert.Equal(0, JournalInspector.Verify(dir.Path).ExitCode);
    }

    [Fact]
    public void A_negative_initial_offset_is_rejected()
    {
        using var dir = new TempDirectory();
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => JournalLog.Open(dir.Path, s_options with { InitialOffset = -1 }));
        Assert.Equal(nameof(JournalOptions.InitialOffset), e.ParamName);
        Assert.Empty(JournalFiles.Segments(dir.Path));
    }

    [Fact]
    public void The_initial_offset_is_ignored_once_the_directory_holds_segments()
    {
        using var dir = new TempDirectory();
        using (var journal = JournalLog.Open(dir.Path, AppendReadTests.Small))
        {
            AppendReadTests.AppendRange(journal, 100);
        }

        using (var journal = JournalLog.Open(dir.Path, s_options))
        {
            Assert.Equal(0, journal.FirstOffset);
            Assert.Equal(100, journal.NextOffset);
            Assert.Equal(100, AppendReadTests.ReadAllChecked(journal));
        }
    }

    [Fact]
    public void A_standby_starting_at_the_primarys_first_retained_offset_copies_it_byte_for_byte()
    {
        using var primaryDir = new TempDirectory();
        using var standbyDir = new TempDirectory();
        long first;
        using (var primary = JournalLog.Open(primaryDir.Path, AppendReadTests.Small))
        {
            Replica.AppendVaried(primary, 4000, seed: 21);
            RetentionTests.SealAll(primary);
            RetentionTests.DeletesEventually(() => primary.TruncateBefore(1500), "truncation deletes the segments wholly below 1500");
            first = primary.FirstOffset;
            Assert.True(first > 0);
            using var standby = JournalLog.Open(standbyDir.Path, AppendReadTests.Small with { InitialOffset = first });
            Assert.Equal(first, standby.NextOffset);
            Replica.Copy(primary, standby, from: first);
            Assert.Equal(primary.NextOffset, standby.NextOffset);
            Assert.Equal(first, standby.FirstOffset);
            var expected = Replica.RawRecords(primary, first);
            var copied = Replica.RawRecords(standby, first);
            Assert.Equal(expected.Count, copied.Count);
            Assert.All(Enumerable.Range(0, expected.Count), i => Assert.True(expected[i].AsSpan().SequenceEqual(copied[i]), $"record {first + i}"));
        }

        Replica.AssertSameFiles(primaryDir.Path, standbyDir.Path);
    }

    private static void AssertSeeks(JournalLog journal)
    {
        foreach (var relative in new long[] { 0, 1, 777, 2048, 3999 })
        {
            using var byOffset = journal.OpenReader(ReadStart.FromOffset(Start + relative));
            Assert.True(byOffset.TryRead(out var r));
            Assert.Equal(Start + relative, r.Offset);
            Assert.True(r.Payload.SequenceEqual(AppendReadTests.PayloadFor(Start + relative)));

            using var byTime = journal.OpenReader(ReadStart.FromTimestamp(Replica.T0 + (relative * 10) - 5));
            Assert.True(byTime.TryRead(out var t));
            Assert.Equal(Start + relative, t.Offset);
        }

        using var end = journal.OpenReader(ReadStart.End);
        Assert.Equal(journal.DurableOffset, end.NextOffset);
    }
}
