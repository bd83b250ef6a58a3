using System.Collections.Concurrent;
using System.Text;
using FastBroker.Engine;
using FastBroker.Testing;
using static FastBroker.BrokerTests.Consume;

namespace FastBroker.BrokerTests;

/// <summary>
/// A slow or hung <c>msync</c> of one state file (a stalled disk, an NFS hiccup) must not hold what else takes that
/// file's lock (docs/broker.md, "Subscriptions and work-queue groups"): the timer's check of the file, and so its pass
/// over every other file and the commits and acks waiting for the owner's lock that check holds, the copy that writes a
/// removed file again, its close. The flusher's hook holds one file's msync on a gate; the file stays mapped until that
/// msync ends, whatever closed it meanwhile.
/// </summary>
public sealed class StateFileMsyncLockTests
{
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(30);
    private static readonly TopicOptions s_fsynced = TopicOptions.Default with { Durability = Durability.Fsynced, SegmentBytes = 4L << 20 };

    [Fact]
    public async Task A_held_msync_of_one_state_file_holds_neither_the_timers_rewrite_of_other_removed_files_nor_commits_and_acks()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        var b = f.Broker;
        b.StateFileCheckInterval = Timeout.InfiniteTimeSpan; // the test says when the timer checks
        b.CreateTopic("ledger", s_fsynced);
        for (var i = 0; i < 10; i++)
        {
            await b.PublishAsync("ledger", Encoding.UTF8.GetBytes($"m{i}"));
        }

        var stuckPath = PositionPath(f, "stuck");
        var movedPath = PositionPath(f, "moved");
        var groupPath = Path.Combine(f.DataDirectory, "topics", "ledger", "groups", "workers.state");
        using var entered = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        b.StateFlusher.SyncFault = file =>
        {
            if (file.Path == stuckPath)
            {
                entered.Set();
                Assert.True(release.Wait(TimeSpan.FromSeconds(120)), "the test did not release the held msync");
            }
        };

        using var stuck = b.Subscribe("ledger", Options("stuck")); // subscribed first: the timer's pass checks it first
        using var moved = b.Subscribe("ledger", Options("moved"));
        using var member = b.JoinGroup("ledger", "workers", GroupOptions.Default with { Prefetch = 6 });
        var jobs = FetchMany(member, 6, "jobs 0 to 5 are delivered");
        Assert.True(member.Ack(jobs[0].Offset, jobs[0].DeliveryCount));
        moved.Commit("ledger", 2);
        var held = stuck.CommitAsync("ledger", 1).AsTask();
        try
        {
            Assert.True(entered.Wait(s_deadline), $"the flusher did not start stuck.pos's msync within {s_deadline.TotalSeconds} s");
            File.Delete(movedPath);
            File.Delete(groupPath);
            b.StateFileCheckInterval = TimeSpan.FromMilliseconds(50);

            // The timer's pass checks stuck.pos (its msync held) and goes on to the others: each removed one is written
            // again at its path.
            Assert.True(
                Eventually.TryWait(() => File.Exists(movedPath) && File.Exists(groupPath), s_deadline),
                $"{s_deadline.TotalSeconds} s after moved.pos and workers.state were removed, with stuck.pos's msync held: moved.pos {(File.Exists(movedPath) ? "is" : "is not")} at its path, workers.state {(File.Exists(groupPath) ? "is" : "is not")}; log: [{string.Join(" | ", log)}]");
            Assert.Equal(2, PositionIn(movedPath, "ledger"));
            Assert.Equal(1, GroupAckStore.ReadFloor(groupPath));

            // Commits and acks that do not wait for their msync (the flusher is held) return, on the held file too: its
            // check, run by each pass, holds the subscription's lock only for its readlink.
            var stores = Task.Run(() =>
            {
                stuck.Commit("ledger", 3);
                moved.Commit("ledger", 4);
                Assert.True(member.Ack(jobs[1].Offset, jobs[1].DeliveryCount));
            });
            Assert.True(Eventually.TryWait(() => stores.IsCompleted, s_deadline), $"a commit or an ack did not return within {s_deadline.TotalSeconds} s while stuck.pos's msync was held");
            await stores;
            Assert.Equal(4, PositionIn(movedPath, "ledger"));
            Assert.Equal(2, GroupAckStore.ReadFloor(groupPath));
            Assert.False(held.IsCompleted, $"stuck.pos's CommitAsync is {held.Status} while its msync is held");
        }
        finally
        {
            release.Set();
        }

        await held.WaitAsync(s_deadline); // the held msync covers it once it ends
        b.StateFlusher.SyncFault = null;
        await moved.CommitAsync("ledger", 5).AsTask().WaitAsync(s_deadline); // the file at the path is synced as before
        Assert.Equal(5, PositionIn(movedPath, "ledger"));
        Assert.Equal(0, b.StateFlusher.Failures);
    }

    [Fact]
    public async Task A_check_a_commit_and_the_close_of_a_file_whose_msync_is_held_do_not_wait_for_it_and_it_is_unmapped_after_it()
    {
        using var dir = new TempDirectory();
        var path = Path.Combine(dir.Path, "subscriptions", "s.pos");
        using var entered = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var flusher = new StateFileFlusher
        {
            SyncFault = _ =>
            {
                entered.Set();
                Assert.True(release.Wait(TimeSpan.FromSeconds(120)), "the test did not release the held msync");
            },
        };

        var store = PositionStore.Open(path, flusher);
        store.Commit("t", 3);
        var first = store.WaitForSyncAsync(store.RequestSync());
        Task<long> others;
        try
        {
            Assert.True(entered.Wait(s_deadline), $"the flusher did not start the msync within {s_deadline.TotalSeconds} s");
            others = Task.Run(() =>
            {
                Assert.Equal(PositionFileCheck.AtItsPath, store.RewriteIfRemoved());
                store.Commit("t", 5);
                var generation = store.RequestSync();
                store.Dispose(); // msyncs what is waiting itself; the held msync still runs in the mapping
                return generation;
            });
            Assert.True(Eventually.TryWait(() => others.IsCompleted, s_deadline), $"a check, a commit or the close did not return within {s_deadline.TotalSeconds} s while the file's msync was held");

            // The close's own msync covered both commits: their waiters complete without the held one.
            await first.WaitAsync(s_deadline);
            await store.WaitForSyncAsync(await others).WaitAsync(s_deadline);
            Assert.False(flusher.SyncsEnded > 0, "the flusher's sync ended while its msync was held");
        }
        finally
        {
            release.Set();
        }

        // The held msync ends in a file still mapped (an unmapped one would fail it) and the file is unmapped after it.
        Assert.True(Eventually.TryWait(() => flusher.SyncsEnded > 0, s_deadline), $"the flusher's sync did not end within {s_deadline.TotalSeconds} s of its release");
        Assert.True(flusher.Failures == 0, $"{flusher.Failures} msync(s) failed: the close unmapped the file under the held msync");
        Assert.Throws<ObjectDisposedException>(() => store.Commit("t", 6));
        Assert.Equal(5, PositionIn(path, "t"));
    }

    private static SubscriptionOptions Options(string name) => SubscriptionOptions.Default with { DurableName = name, Start = StartPosition.Earliest };

    private static string PositionPath(BrokerFixture f, string name) => Path.Combine(f.DataDirectory, "subscriptions", name + ".pos");

    /// <summary>The position the file at <paramref name="path"/> holds for <paramref name="topic"/> (read from a copy: the file is not opened for writing).</summary>
    private static long? PositionIn(string path, string topic)
    {
        using var dir = new TempDirectory();
        var copy = Path.Combine(dir.Path, "copy.pos");
        File.Copy(path, copy);
        using var store = PositionStore.Open(copy);
        return store.Get(topic);
    }
}
