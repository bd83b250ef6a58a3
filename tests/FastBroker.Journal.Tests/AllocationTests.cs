using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

public class AllocationTests
{
    private static readonly JournalOptions s_big = new() { SegmentSize = 64 << 20, Durability = DurabilityPolicy.None };

    [Theory]
    [InlineData(DurabilityPolicy.None)]
    [InlineData(DurabilityPolicy.GroupCommit)]
    public void Steady_state_append_and_commit_allocate_nothing(DurabilityPolicy policy)
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, s_big with { Durability = policy });
        var payload = new byte[100];
        for (var i = 0; i < 2000; i++)
        {
            Append(journal, payload, i);
        }

        // The fewest bytes of several rounds: a GC that another test's thread sets off during a round can add up to an
        // allocation quantum (8 KB) to this thread's count without an allocation here (CI once saw 8072 bytes), while
        // an allocation per append would show in every round.
        var allocated = AllocationMeter.MinBytesPerRound(() =>
        {
            for (var i = 0; i < 50_000; i++)
            {
                Append(journal, payload, i);
            }
        }, rounds: 4);
        Assert.True(allocated < 256, $"{allocated} bytes allocated for 50,000 appends");
    }

    [Fact]
    public void Batch_append_allocates_nothing()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, s_big);
        var payload = new byte[100];
        var size = 16 * JournalLog.StoredSize(0, 0, payload.Length);
        long before = 0;
        for (var round = 0; round < 1100; round++)
        {
            if (round == 100)
            {
                before = GC.GetAllocatedBytesForCurrentThread();
            }

            Assert.True(journal.TryBeginBatch(size, out var batch));
            for (var i = 0; i < 16; i++)
            {
                batch.Append(payload);
            }

            batch.Complete();
            journal.Commit();
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 256, $"{allocated} bytes allocated for 16,000 batched appends");
    }

    [Fact]
    public void Steady_state_record_copy_allocates_nothing()
    {
        using var primaryDir = new TempDirectory();
        using var standbyDir = new TempDirectory();
        using var primary = JournalLog.Open(primaryDir.Path, s_big);
        using var standby = JournalLog.Open(standbyDir.Path, s_big);
        var payload = new byte[100];
        for (var i = 0; i < 60_000; i++)
        {
            Assert.True(primary.TryAppend(payload, out _));
        }

        primary.Commit();
        using var reader = primary.OpenReader(ReadStart.Beginning);
        long before = 0;
        var runs = 0;
        while (reader.TryReadRun(4096, out var run))
        {
            if (++runs == 100)
            {
                before = GC.GetAllocatedBytesForCurrentThread();
            }

            Assert.True(standby.TryAppendRecords(run.Bytes, run.FirstOffset, out var appended) && appended == run.RecordCount);
            standby.Commit();
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(runs > 1000, $"{runs} runs");
        Assert.Equal(60_000, standby.NextOffset);
        Assert.True(allocated < 256, $"{allocated} bytes allocated copying {runs - 100} runs");
    }

    [Fact]
    public async Task Steady_state_reads_and_satisfied_waits_allocate_nothing()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, s_big);
        var payload = new byte[100];
        for (var i = 0; i < 60_000; i++)
        {
            Assert.True(journal.TryAppend(payload, out _));
        }

        journal.Commit();
        using var reader = journal.OpenReader(ReadStart.Beginning);
        for (var i = 0; i < 1000; i++)
        {
            Assert.True(reader.TryRead(out _));
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        long sum = 0;
        for (var i = 0; i < 50_000; i++)
        {
            Assert.True(reader.TryRead(out var r));
            sum += r.Payload.Length + r.Offset;
            await journal.WaitForDurableAsync(r.Offset);
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 256, $"{allocated} bytes allocated for 50,000 reads");
        Assert.True(sum > 0);
    }

    private static void Append(JournalLog journal, byte[] payload, int i)
    {
        Assert.True(journal.TryAppend(payload, out _));
        if (i % 16 == 15)
        {
            journal.Commit();
        }
    }
}
