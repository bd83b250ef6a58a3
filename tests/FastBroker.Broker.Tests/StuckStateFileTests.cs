using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// One state file whose <c>msync</c> hangs (a stalled device, a lost mount) must delay only its own waiters: the
/// flusher syncs the other files, and their <c>CommitAsync</c>s complete, while it hangs (docs/broker.md, "Fsynced
/// topic"). The flusher's test hook holds the chosen file's msync on a gate until the test releases it.
/// </summary>
public sealed class StuckStateFileTests
{
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_held_msync_of_one_file_delays_only_that_files_waiters_and_runs_once_at_a_time()
    {
        using var dir = new TempDirectory();
        var stuckPath = dir.Combine("stuck.pos");
        using var entered = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var stuckSyncs = 0;
        var flusher = new StateFileFlusher
        {
            SyncFault = f =>
            {
                if (f.Path == stuckPath)
                {
                    Interlocked.Increment(ref stuckSyncs);
                    entered.Set();
                    Assert.True(release.Wait(TimeSpan.FromSeconds(120)), "the test did not release the held msync");
                }
            },
        };

        using var stuck = PositionStore.Open(stuckPath, flusher);
        using var a = PositionStore.Open(dir.Combine("a.pos"), flusher);
        using var b = PositionStore.Open(dir.Combine("b.pos"), flusher);
        stuck.Commit("t", 1);
        var held = stuck.WaitForSyncAsync(stuck.RequestSync());
        Task heldAgain;
        try
        {
            Assert.True(entered.Wait(s_deadline), $"the flusher did not start stuck.pos's msync within {s_deadline.TotalSeconds} s");

            // Requested after the held msync read its generation: a second msync of stuck.pos, not one alongside it.
            stuck.Commit("t", 2);
            heldAgain = stuck.WaitForSyncAsync(stuck.RequestSync());

            // The other files are synced while stuck.pos's msync hangs, each request of theirs, not only the first.
            for (var i = 1; i <= 3; i++)
            {
                a.Commit("t", i);
                b.Commit("t", i);
                var waits = Task.WhenAll(a.WaitForSyncAsync(a.RequestSync()), b.WaitForSyncAsync(b.RequestSync()));
                Assert.True(
                    Eventually.TryWait(() => waits.IsCompleted, s_deadline),
                    $"a.pos's and b.pos's syncs (round {i}) did not complete within {s_deadline.TotalSeconds} s while stuck.pos's msync was held: a.pos synced {a.Synced} of {a.SyncRequested}, b.pos {b.Synced} of {b.SyncRequested}");
                await waits;
            }

            Assert.False(held.IsCompleted, $"stuck.pos's first wait is {held.Status} while its msync is held");
            Assert.False(heldAgain.IsCompleted, $"stuck.pos's second wait is {heldAgain.Status} while its msync is held");
            Assert.Equal(1, Volatile.Read(ref stuckSyncs)); // never two msyncs of one file at once
        }
        finally
        {
            release.Set();
        }

        await held.WaitAsync(s_deadline);
        await heldAgain.WaitAsync(s_deadline); // the next msync of stuck.pos, once the held one ended
        Assert.Equal(2, Volatile.Read(ref stuckSyncs));
        Assert.Equal(0, flusher.Failures);
    }

    [Fact]
    public async Task Files_are_synced_side_by_side_up_to_the_bound_and_one_queued_past_it_starts_when_a_place_frees()
    {
        using var dir = new TempDirectory();
        using var releaseFirst = new ManualResetEventSlim();
        using var releaseSecond = new ManualResetEventSlim();
        var firstPath = dir.Combine("first.pos");
        var secondPath = dir.Combine("second.pos");
        var flusher = new StateFileFlusher(maxConcurrentSyncs: 2)
        {
            SyncFault = f =>
            {
                var gate = f.Path == firstPath ? releaseFirst : f.Path == secondPath ? releaseSecond : null;
                Assert.True(gate?.Wait(TimeSpan.FromSeconds(120)) ?? true, "the test did not release the held msync");
            },
        };

        using var first = PositionStore.Open(firstPath, flusher);
        using var second = PositionStore.Open(secondPath, flusher);
        using var third = PositionStore.Open(dir.Combine("third.pos"), flusher);
        Task firstWait, secondWait, thirdWait;
        try
        {
            first.Commit("t", 1);
            second.Commit("t", 1);
            third.Commit("t", 1);
            firstWait = first.WaitForSyncAsync(first.RequestSync());
            secondWait = second.WaitForSyncAsync(second.RequestSync());
            thirdWait = third.WaitForSyncAsync(third.RequestSync());

            // A request queues or starts its file before it returns: two held, the third waits for a place.
            Assert.Equal(2, flusher.Running);
            Assert.Equal(1, flusher.Queued);
            Assert.False(thirdWait.IsCompleted, $"third.pos's wait is {thirdWait.Status} with both places held");

            releaseFirst.Set();
            await firstWait.WaitAsync(s_deadline);
            await thirdWait.WaitAsync(s_deadline); // took first.pos's place while second.pos's msync is still held
            Assert.False(secondWait.IsCompleted, $"second.pos's wait is {secondWait.Status} while its msync is held");
        }
        finally
        {
            releaseFirst.Set();
            releaseSecond.Set();
        }

        await secondWait.WaitAsync(s_deadline);
        Assert.True(Eventually.TryWait(() => flusher.Running == 0 && flusher.Queued == 0, s_deadline), $"the flusher still runs {flusher.Running} syncs, {flusher.Queued} queued");
        Assert.Equal(0, flusher.Failures);
    }
}
