using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

public class StateStoreTests
{
    [Fact]
    public void Group_acks_and_floor_survive_reopen()
    {
        using var dir = new TempDirectory();
        var path = dir.Combine("g.state");
        using (var store = GroupAckStore.Open(path, initialFloor: 10, window: 16))
        {
            Assert.Equal(10, store.Floor);
            store.MarkDone(12);
            store.MarkDone(15);
            store.MarkDone(3); // below the floor: already done, no-op
            Assert.True(store.IsDone(12));
            Assert.False(store.IsDone(11));
        }

        using (var store = GroupAckStore.Open(path, initialFloor: 0, window: 16))
        {
            Assert.Equal(10, store.Floor); // the initial floor applies only to a new file
            Assert.Equal(new long[] { 12, 15 }, store.DoneBetweenFloorAnd(100));
            store.AdvanceFloor(13);
            Assert.True(store.IsDone(12));
            Assert.False(store.IsDone(14));
            Assert.Equal(new long[] { 15 }, store.DoneBetweenFloorAnd(100));
        }
    }

    [Fact]
    public void A_stale_slot_from_an_earlier_lap_never_marks_a_future_offset_done()
    {
        using var dir = new TempDirectory();
        using var store = GroupAckStore.Open(dir.Combine("g.state"), initialFloor: 0, window: 4);
        store.MarkDone(1);
        store.AdvanceFloor(4);

        // Offset 5 shares slot 1 with offset 1; the slot still says "1 done", which is not "5 done".
        Assert.False(store.IsDone(5));
        Assert.Throws<InvalidOperationException>(() => store.MarkDone(8)); // beyond floor + window
        store.MarkDone(5);
        Assert.True(store.IsDone(5));
    }

    [Fact]
    public void Committed_positions_survive_reopen_per_topic()
    {
        using var dir = new TempDirectory();
        var path = dir.Combine("sub.pos");
        using (var store = PositionStore.Open(path))
        {
            Assert.Null(store.Get("orders.eu"));
            store.Commit("orders.eu", 0);
            store.Commit("orders.us", 41);
            store.Commit("orders.eu", 7);
        }

        using (var store = PositionStore.Open(path))
        {
            Assert.Equal(7, store.Get("orders.eu"));
            Assert.Equal(41, store.Get("orders.us"));
            Assert.Equal(2, store.All().Count);
        }
    }

    [Fact]
    public void A_file_of_another_kind_is_refused()
    {
        using var dir = new TempDirectory();
        var path = dir.Combine("x.state");
        File.WriteAllBytes(path, Enumerable.Repeat((byte)0x5A, (8 + 16) * 8).ToArray());
        Assert.Throws<InvalidDataException>(() => GroupAckStore.Open(path, 0, window: 16));
    }

    [Fact]
    public async Task A_requested_sync_is_done_by_the_flusher_and_completes_its_waiters()
    {
        using var dir = new TempDirectory();
        var flusher = new StateFileFlusher();
        using var unsynced = PositionStore.Open(dir.Combine("b.pos"));
        unsynced.Commit("t", 5);
        Assert.Equal(0, unsynced.RequestSync()); // no flusher (a Written topic): nothing is synced, nothing to wait for

        var path = dir.Combine("a.pos");
        var store = PositionStore.Open(path, flusher);
        store.Commit("t", 5);
        var first = store.RequestSync();
        await store.WaitForSyncAsync(first).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.True(store.Synced >= first);
        Assert.Equal(0, MappedPages.DirtyKb(path));

        // Closing syncs what was requested and not yet synced, and completes its waiter.
        store.Commit("t", 6);
        var second = store.RequestSync();
        Assert.True(second > first);
        var waiting = store.WaitForSyncAsync(second);
        store.Dispose();
        await waiting.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.True(store.Synced >= second);
        using (var reopened = PositionStore.Open(path))
        {
            Assert.Equal(6, reopened.Get("t"));
        }
    }

    [Fact]
    public async Task A_waiter_that_arrives_after_its_generations_sync_failed_is_failed_not_left_waiting()
    {
        using var dir = new TempDirectory();
        var path = dir.Combine("late.pos");
        var fault = true;
        var flusher = new StateFileFlusher
        {
            SyncFault = _ =>
            {
                if (Volatile.Read(ref fault))
                {
                    throw new InvalidOperationException("injected sync fault");
                }
            },
        };
        using var store = PositionStore.Open(path, flusher);
        store.Commit("t", 1);
        var generation = store.RequestSync();

        // The flusher fails that generation's sync before anyone waits for it (a commit's caller can be this slow).
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (flusher.Failures == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "the flusher did not try the sync within 30 s");
            await Task.Delay(10);
        }

        // Nothing queues the file again; without the failure kept, this waiter waited for ever.
        var late = store.WaitForSyncAsync(generation);
        var failed = await Assert.ThrowsAsync<BrokerException>(() => late.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Equal(BrokerErrorCode.StorageError, failed.Code);
        Assert.Contains("injected sync fault", failed.Message, StringComparison.Ordinal);

        // A later request is tried again, and its waiter completes.
        Volatile.Write(ref fault, false);
        store.Commit("t", 2);
        var again = store.RequestSync();
        await store.WaitForSyncAsync(again).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.True(store.Synced >= again);
        await store.WaitForSyncAsync(generation).WaitAsync(TimeSpan.FromSeconds(20)); // covered by the later sync
    }

    [Fact]
    public async Task A_sync_that_throws_anything_fails_that_files_waiters_and_the_flusher_goes_on()
    {
        using var dir = new TempDirectory();
        var log = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var badPath = dir.Combine("bad.pos");
        var fault = true;

        // Not an IOException: what a sync can also throw (an ObjectDisposedException of a handle, say). Escaping the
        // flusher's pool work item, it ended the process.
        var flusher = new StateFileFlusher
        {
            Log = log.Enqueue,
            SyncFault = f =>
            {
                if (Volatile.Read(ref fault) && f.Path == badPath)
                {
                    throw new InvalidOperationException("injected sync fault");
                }
            },
        };
        using var bad = PositionStore.Open(badPath, flusher);
        using var good = PositionStore.Open(dir.Combine("good.pos"), flusher);
        bad.Commit("t", 1);
        good.Commit("t", 1);
        var badWait = bad.WaitForSyncAsync(bad.RequestSync());
        var goodWait = good.WaitForSyncAsync(good.RequestSync());

        var failed = await Assert.ThrowsAsync<BrokerException>(() => badWait.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Equal(BrokerErrorCode.StorageError, failed.Code);
        Assert.Contains("injected sync fault", failed.Message, StringComparison.Ordinal);
        await goodWait.WaitAsync(TimeSpan.FromSeconds(20)); // the other file of the pass is synced
        Assert.True(flusher.Failures >= 1);
        Assert.Contains(log, l => l.Contains("bad.pos", StringComparison.Ordinal) && l.Contains("injected sync fault", StringComparison.Ordinal));

        // The flusher is still running, and the failed file is queued again by its next request.
        Volatile.Write(ref fault, false);
        bad.Commit("t", 2);
        var again = bad.RequestSync();
        await bad.WaitForSyncAsync(again).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.True(bad.Synced >= again);
    }

    [Fact]
    public async Task A_waiter_that_arrives_after_the_closes_msync_failed_gets_that_failure_as_the_waiters_before_it()
    {
        using var dir = new TempDirectory();
        var blockerPath = dir.Combine("blocker.pos");
        using var entered = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();

        // Every msync of the flusher's is held (files are synced side by side), so the only msync of 'closing.pos' that
        // ends before the release is the one its close makes.
        var flusher = new StateFileFlusher
        {
            SyncFault = f =>
            {
                if (f.Path == blockerPath)
                {
                    entered.Set();
                }

                Assert.True(release.Wait(TimeSpan.FromSeconds(60)), "the test did not release the flusher");
            },
            CloseSyncFault = _ => throw new IOException("injected close fault"),
        };
        using var blocker = PositionStore.Open(blockerPath, flusher);
        blocker.Commit("t", 1);
        var blockerWait = blocker.WaitForSyncAsync(blocker.RequestSync());
        try
        {
            Assert.True(entered.Wait(TimeSpan.FromSeconds(30)), "the flusher did not start the blocker's sync within 30 s");

            var store = PositionStore.Open(dir.Combine("closing.pos"), flusher);
            store.Commit("t", 1);
            var generation = store.RequestSync();
            var early = store.WaitForSyncAsync(generation);
            store.Dispose(); // its msync of generation fails
            var late = store.WaitForSyncAsync(generation); // a CommitAsync whose wait begins just after the close

            var earlyFailure = await Assert.ThrowsAsync<BrokerException>(() => early.WaitAsync(TimeSpan.FromSeconds(20)));
            Assert.Equal(BrokerErrorCode.StorageError, earlyFailure.Code);
            var lateFailure = await Assert.ThrowsAsync<BrokerException>(() => late.WaitAsync(TimeSpan.FromSeconds(20)));
            Assert.Equal(BrokerErrorCode.StorageError, lateFailure.Code);
            Assert.Contains("injected close fault", lateFailure.Message, StringComparison.Ordinal);
            Assert.Equal(earlyFailure.Message, lateFailure.Message);

            // A wait for an update the close did not have to sync (requested after it) is told the file is closed.
            var after = store.WaitForSyncAsync(generation + 1);
            var closed = await Assert.ThrowsAsync<BrokerException>(() => after.WaitAsync(TimeSpan.FromSeconds(20)));
            Assert.Equal(BrokerErrorCode.Closed, closed.Code);
            Assert.Contains("closing.pos", closed.Message, StringComparison.Ordinal);
        }
        finally
        {
            release.Set();
        }

        await blockerWait.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.True(Eventually.TryWait(() => flusher.Running == 0 && flusher.Queued == 0, TimeSpan.FromSeconds(20)), "the flusher's held msyncs did not end within 20 s of their release");
        Assert.Equal(0, flusher.Failures); // its held msync of 'closing.pos', if it began before the close, ended in a mapped file
    }
}
