using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

public class DurabilityTests
{
    private static JournalOptions With(DurabilityPolicy policy) => AppendReadTests.Small with { Durability = policy };

    [Fact]
    public void None_makes_records_durable_and_visible_at_commit_not_before()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, With(DurabilityPolicy.None));
        using var reader = journal.OpenReader(ReadStart.Beginning);
        Assert.True(journal.TryAppend("a"u8, out _));
        Assert.Equal(1, journal.NextOffset);
        Assert.Equal(0, journal.DurableOffset);
        Assert.False(reader.TryRead(out _), "uncommitted records are invisible");
        journal.Commit();
        Assert.Equal(1, journal.DurableOffset);
        Assert.True(reader.TryRead(out var r));
        Assert.Equal(0, r.Offset);
    }

    /// <summary>
    /// Once a flusher pass fails (here an injected IOException at the end of the pass, which takes the same path as a failed
    /// msync) the journal is faulted, and every append from the next one on is refused with Faulted, nothing written:
    /// under None (the broker's Written durability) a record TryAppend takes is confirmed at once, and the fast path
    /// took them until the segment's allocated end.
    /// </summary>
    [Theory]
    [InlineData(DurabilityPolicy.None)]
    [InlineData(DurabilityPolicy.GroupCommit)]
    public void After_a_failed_flusher_pass_every_append_is_refused_as_faulted(DurabilityPolicy policy)
    {
        using var dir = new TempDirectory();
        var options = With(policy) with { RetentionMaxBytes = 1L << 40, RetentionCheckInterval = TimeSpan.FromMilliseconds(1) };
        using var journal = JournalLog.Open(dir.Path, options);
        AppendReadTests.AppendRange(journal, 10);
        Assert.True(journal.WaitForDurable(9, Eventually.DefaultTimeout));
        journal.FlusherPassFault = () => throw new IOException("injected: the flusher's pass fails");
        Eventually.True(() => IsFaulted(journal), "the flusher's next pass faults the journal");

        var next = journal.NextOffset;
        for (var i = 0; i < 3; i++)
        {
            var e = Assert.Throws<JournalException>(() => journal.TryAppend(AppendReadTests.PayloadFor(next), out _));
            Assert.Equal(JournalErrorCode.Faulted, e.ErrorCode);
        }

        Assert.Equal(next, journal.NextOffset);
    }

    /// <summary>True once the journal is faulted (a wait for durability throws <see cref="JournalErrorCode.Faulted"/>).</summary>
    internal static bool IsFaulted(JournalLog journal)
    {
        try
        {
            _ = journal.WaitForDurable(journal.NextOffset, TimeSpan.FromMilliseconds(1));
            return false;
        }
        catch (JournalException e) when (e.ErrorCode == JournalErrorCode.Faulted)
        {
            return true;
        }
    }

    /// <summary>
    /// A wait for durability that passed its fault check just before a flusher pass failed, and listed its waiter just
    /// after that failure failed the waiters listed then: nothing fails a waiter listed later (a faulted journal's flusher
    /// neither syncs nor fails again), so it is failed at once instead of waiting for ever. The order is forced: the
    /// failure happens, and fails the waiter listed before it, inside the late wait's gap.
    /// </summary>
    [Fact]
    public async Task A_wait_listed_after_a_flush_failure_failed_the_waiters_is_failed_not_left_waiting()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, With(DurabilityPolicy.GroupCommit));
        AppendReadTests.AppendRange(journal, 10);
        Assert.True(journal.WaitForDurable(9, Eventually.DefaultTimeout));
        var target = journal.NextOffset + 1000; // never written: only a failure or the close ends a wait for it
        var early = journal.WaitForDurableAsync(target).AsTask();
        journal.BeforeWaiterListed = () =>
        {
            journal.BeforeWaiterListed = null;
            var once = 1;
            journal.FlusherPassFault = () =>
            {
                if (Interlocked.Exchange(ref once, 0) == 1)
                {
                    throw new IOException("injected: one flusher pass fails");
                }
            };
            Eventually.True(() => early.IsCompleted, "the failed pass fails the waiter listed before it");
        };

        var late = journal.WaitForDurableAsync(target).AsTask();
        var e = await Assert.ThrowsAsync<JournalException>(() => late.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Equal(JournalErrorCode.Faulted, e.ErrorCode);
        Assert.Contains("injected: one flusher pass fails", e.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<JournalException>(() => early); // the fault itself (IoError), as every waiter listed then
    }

    /// <summary>As above with the close: a waiter listed after <see cref="JournalLog.Dispose"/> failed the waiters is failed at once.</summary>
    [Fact]
    public async Task A_wait_listed_after_the_close_failed_the_waiters_is_failed_not_left_waiting()
    {
        using var dir = new TempDirectory();
        var journal = JournalLog.Open(dir.Path, With(DurabilityPolicy.GroupCommit));
        AppendReadTests.AppendRange(journal, 10);
        Assert.True(journal.WaitForDurable(9, Eventually.DefaultTimeout));
        var target = journal.NextOffset + 1000;
        var early = journal.WaitForDurableAsync(target).AsTask();
        journal.BeforeWaiterListed = () =>
        {
            journal.BeforeWaiterListed = null;
            journal.Dispose(); // the writer's thread: it has stopped appending
            Eventually.True(() => early.IsCompleted, "the close fails the waiter listed before it");
        };

        var late = journal.WaitForDurableAsync(target).AsTask();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => late.WaitAsync(TimeSpan.FromSeconds(20)));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => early);
    }

    [Fact]
    public async Task Group_commit_wakes_every_waiter_of_the_flush_together()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, With(DurabilityPolicy.GroupCommit));
        var waits = new List<Task>();
        for (var i = 0; i < 100; i++)
        {
            Assert.True(journal.TryAppend(AppendReadTests.PayloadFor(i), out var offset));
            waits.Add(journal.WaitForDurableAsync(offset).AsTask());
        }

        journal.Commit();
        await Eventually.Completes(Task.WhenAll(waits));
        Assert.True(journal.DurableOffset >= 100);
        Assert.True(journal.WaitForDurable(99, TimeSpan.FromSeconds(60)));
    }

    [Fact]
    public void Group_commit_waiter_needs_no_explicit_commit()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, With(DurabilityPolicy.GroupCommit));
        Assert.True(journal.TryAppend("x"u8, out var offset));
        Assert.True(journal.WaitForDurable(offset, Eventually.DefaultTimeout));
        Assert.Equal(1, journal.DurableOffset);
    }

    [Fact]
    public async Task Interval_policy_flushes_without_commit()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, With(DurabilityPolicy.Interval) with { FlushInterval = TimeSpan.FromMilliseconds(5) });
        Assert.True(journal.TryAppend("x"u8, out var offset));
        await Eventually.Completes(journal.WaitForDurableAsync(offset).AsTask());
    }

    [Fact]
    public void Synchronous_wait_times_out_when_nothing_commits()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, With(DurabilityPolicy.None));
        Assert.True(journal.TryAppend("x"u8, out var offset));
        Assert.False(journal.WaitForDurable(offset, TimeSpan.FromMilliseconds(20)));
        journal.Commit();
        Assert.True(journal.WaitForDurable(offset, TimeSpan.Zero));
    }

    [Fact]
    public async Task A_cancelled_wait_throws_and_others_still_complete()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, With(DurabilityPolicy.None));
        Assert.True(journal.TryAppend("x"u8, out var offset));
        using var cts = new CancellationTokenSource();
        var cancelled = journal.WaitForDurableAsync(offset, cts.Token).AsTask();
        var other = journal.WaitForDurableAsync(offset).AsTask();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Eventually.Completes(cancelled));
        journal.Commit();
        await Eventually.Completes(other);
    }

    [Fact]
    public async Task Dispose_fails_pending_waiters_instead_of_hanging_them()
    {
        using var dir = new TempDirectory();
        var journal = JournalLog.Open(dir.Path, With(DurabilityPolicy.None));
        var wait = journal.WaitForDurableAsync(10).AsTask();
        journal.Dispose();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => Eventually.Completes(wait));
    }

    [Fact]
    public void Back_pressure_refuses_appends_until_the_flusher_catches_up()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, With(DurabilityPolicy.GroupCommit) with { MaxUndurableBytes = 1000 });
        var refused = false;
        for (var i = 0; i < 100_000 && !refused; i++)
        {
            refused = !journal.TryAppend(new byte[100], out _);
        }

        Assert.True(refused, "appends beyond MaxUndurableBytes must be refused");
        var appended = journal.NextOffset;
        Assert.True(journal.WaitForDurable(appended - 1, Eventually.DefaultTimeout));
        Assert.True(journal.TryAppend(new byte[100], out var next));
        Assert.Equal(appended, next);
    }

    [Fact]
    public void Appended_and_durable_positions_are_reported_separately()
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, With(DurabilityPolicy.None));
        AppendReadTests.AppendRange(journal, 10);
        Assert.True(journal.TryAppend("more"u8, out _));
        Assert.Equal(11, journal.NextOffset);
        Assert.Equal(10, journal.DurableOffset);
    }
}
