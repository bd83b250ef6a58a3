using System.Collections.Concurrent;
using System.Text;
using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// A durable subscription's position file removed while a subscriber holds its name (docs/broker.md, "Subscriptions
/// and work-queue groups"): the subscriber keeps its mapping of the removed file, so without a check every commit from
/// then on would go to no file anyone can open and be dropped when it closes. The broker finds the removal (at the
/// timer's check, or when the subscription closes), writes its positions again at its path and says so; a file put at
/// the path meanwhile is left as it is.
/// </summary>
public sealed class PositionFileRemovalTests
{
    private const string Removed = "was removed while it was subscribed";
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_position_file_removed_while_subscribed_is_written_again_when_the_subscription_closes_and_no_commit_is_lost()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        f.Broker.StateFileCheckInterval = Timeout.InfiniteTimeSpan; // only the close checks
        await PublishAsync(f, 5);
        var path = PositionPath(f, "fresh");
        using (var s = f.Broker.Subscribe("jobs", Options("fresh")))
        {
            s.Commit("jobs", 2);
            File.Delete(path); // the operator's removal, while the subscriber holds the name
            s.Commit("jobs", 4);
            Assert.Equal(4, s.CommittedOffset("jobs")); // the holder goes on with its own mapping
            Assert.DoesNotContain(log, l => l.Contains(Removed, StringComparison.Ordinal));
        }

        AssertLoggedWrittenAgain(log, path);
        Assert.True(File.Exists(path), $"{path} was not written again when the subscription closed");
        await f.RestartAsync(o => o with { Log = log.Enqueue });
        using var again = f.Broker.Subscribe("jobs", Options("fresh"));
        Assert.Equal(4, again.CommittedOffset("jobs"));
    }

    [Fact]
    public async Task A_position_file_removed_while_subscribed_is_written_again_by_the_timer_and_later_commits_reach_it()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        f.Broker.StateFileCheckInterval = TimeSpan.FromMilliseconds(50);
        await PublishAsync(f, 10);
        var path = PositionPath(f, "fresh");
        var s = f.Broker.Subscribe("jobs", Options("fresh"));
        s.Commit("jobs", 2);
        File.Delete(path);
        s.Commit("jobs", 4);
        Assert.True(
            Eventually.TryWait(() => File.Exists(path) && log.Any(l => l.Contains(Removed, StringComparison.Ordinal)), s_deadline),
            $"{s_deadline.TotalSeconds} s after fresh.pos was removed while subscribed, {(File.Exists(path) ? "it is at its path" : "nothing is at its path")}; log: [{string.Join(" | ", log)}]");
        AssertLoggedWrittenAgain(log, path);
        Assert.Equal(4, PositionIn(path, "jobs")); // the commit made after the removal is in it

        s.Commit("jobs", 7); // goes to the file at the path: the open subscription uses it
        Assert.Equal(7, PositionIn(path, "jobs"));

        // Restarted with the subscription still open (the broker's close closes it): it resumes from its last commit.
        await f.RestartAsync(o => o with { Log = log.Enqueue });
        Assert.Single(log, l => l.Contains(Removed, StringComparison.Ordinal)); // the close found nothing more
        using var again = f.Broker.Subscribe("jobs", Options("fresh") with { Start = StartPosition.Committed });
        Assert.Equal(7, again.CommittedOffset("jobs"));
        Assert.Equal(7, again.Positions["jobs"]); // resumes from its last commit
    }

    [Fact]
    public async Task A_file_put_at_the_removed_position_file_path_is_left_as_it_is_and_opened_by_the_next_subscription()
    {
        if (MappedStateFile.SystemRemovalCheck != MappedStateFile.RemovalCheck.ProcFd)
        {
            return; // elsewhere a removal is told only while nothing is at the path
        }

        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        f.Broker.StateFileCheckInterval = Timeout.InfiniteTimeSpan; // no check between the removal and the file put back
        await PublishAsync(f, 5);
        var path = PositionPath(f, "fresh");
        using (var s = f.Broker.Subscribe("jobs", Options("fresh")))
        {
            s.Commit("jobs", 3);
            File.Delete(path);
            using (var restored = PositionStore.Open(path)) // a copy put back by hand, at position 1
            {
                restored.Commit("jobs", 1);
            }

            s.Commit("jobs", 4);
            f.Broker.StateFileCheckInterval = TimeSpan.FromMilliseconds(50);
            Eventually.True(() => log.Any(l => l.Contains("another file is at that path now", StringComparison.Ordinal)), "the timer finds fresh.pos removed and another file at its path", s_deadline);
            Assert.Equal(1, PositionIn(path, "jobs")); // left as it is
        }

        var lines = log.Where(l => l.Contains(Removed, StringComparison.Ordinal)).ToArray();
        Assert.True(
            lines.Length == 2 && lines[0].Contains("are dropped when it closes", StringComparison.Ordinal) && lines[1].Contains("are dropped now that it closed", StringComparison.Ordinal),
            $"expected one line from the timer's checks and one from the close; log: {string.Join(" | ", log)}");
        await f.RestartAsync(o => o with { Log = log.Enqueue });
        using var again = f.Broker.Subscribe("jobs", Options("fresh"));
        Assert.Equal(1, again.CommittedOffset("jobs"));
    }

    [Fact]
    public async Task Commits_awaited_on_an_fsynced_topic_while_the_position_file_is_removed_and_written_again_complete()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        f.Broker.StateFileCheckInterval = TimeSpan.FromMilliseconds(20);
        f.Broker.CreateTopic("ledger", TopicOptions.Default with { Durability = Durability.Fsynced, SegmentBytes = 4L << 20 });
        const int Messages = 400;
        for (var i = 0; i < Messages; i++)
        {
            await f.Broker.PublishAsync("ledger", Encoding.UTF8.GetBytes($"m{i}"));
        }

        var path = PositionPath(f, "ledgered");
        var s = f.Broker.Subscribe("ledger", SubscriptionOptions.Default with { DurableName = "ledgered", Start = StartPosition.Earliest });
        var next = 0L;
        var stop = false;
        var waits = new long[3]; // commits awaited by each committer
        var committers = Enumerable.Range(0, waits.Length).Select(c => Task.Run(async () =>
        {
            while (!Volatile.Read(ref stop))
            {
                var offset = Math.Min(Interlocked.Increment(ref next), Messages);
                await s.CommitAsync("ledger", offset).AsTask().WaitAsync(s_deadline); // fails the test if a wait hangs
                Interlocked.Increment(ref waits[c]);
            }
        })).ToArray();

        for (var removal = 1; removal <= 5; removal++)
        {
            // Every committer awaits commits across each removal and its rewrite.
            var seen = waits.Select(w => Interlocked.Read(ref w)).ToArray();
            Eventually.True(() => Enumerable.Range(0, waits.Length).All(c => Interlocked.Read(ref waits[c]) > seen[c]), $"each committer awaits a commit before removal {removal}", s_deadline);
            File.Delete(path);
            Eventually.True(() => log.Count(l => l.Contains("written again", StringComparison.Ordinal)) >= removal, $"the timer writes ledgered.pos again after removal {removal}", s_deadline);
        }

        var last = waits.Select(w => Interlocked.Read(ref w)).ToArray();
        Eventually.True(() => Enumerable.Range(0, waits.Length).All(c => Interlocked.Read(ref waits[c]) > last[c]), "each committer awaits a commit after the last rewrite", s_deadline);
        Volatile.Write(ref stop, true);
        await Task.WhenAll(committers).WaitAsync(s_deadline);

        // The last commit, awaited after the removals, is what the file at the path holds, and survives a restart.
        await s.CommitAsync("ledger", Messages).AsTask().WaitAsync(s_deadline);
        Assert.Equal(Messages, PositionIn(path, "ledger"));
        await f.RestartAsync(o => o with { Log = log.Enqueue });
        using var again = f.Broker.Subscribe("ledger", SubscriptionOptions.Default with { DurableName = "ledgered", Start = StartPosition.Committed });
        Assert.Equal(Messages, again.CommittedOffset("ledger"));
    }

    [Fact]
    public async Task A_sync_requested_of_a_removed_position_file_is_covered_once_it_is_written_again_and_generations_go_on_rising()
    {
        using var dir = new TempDirectory();
        var path = Path.Combine(dir.Path, "subscriptions", "s.pos");
        var flusher = new StateFileFlusher();
        using var store = PositionStore.Open(path, flusher);
        store.Commit("t", 3);
        File.Delete(path);
        store.Commit("t", 5);
        var before = store.RequestSync(); // of the removed file
        Assert.Equal(PositionFileCheck.WrittenAgain, store.RewriteIfRemoved());
        var covered = store.WaitForSyncAsync(before);
        Assert.True(
            Eventually.TryWait(() => covered.IsCompletedSuccessfully, s_deadline),
            $"a wait for sync generation {before}, requested of the removed file, is {covered.Status} {s_deadline.TotalSeconds} s after the file was written again (its commit is in that file)");
        Assert.True(store.Synced >= before, $"synced {store.Synced} < {before}");
        Assert.Equal(5, PositionIn(path, "t"));

        store.Commit("t", 6);
        var after = store.RequestSync();
        Assert.True(after > before, $"generation {after} after the rewrite, {before} before");
        await store.WaitForSyncAsync(after).WaitAsync(s_deadline);
        Assert.True(store.Synced >= after);
        Assert.Equal(6, PositionIn(path, "t"));
        Assert.Equal(PositionFileCheck.AtItsPath, store.RewriteIfRemoved());
    }

    [Fact]
    public async Task A_failed_msync_of_the_removed_position_file_at_the_swap_is_logged_and_the_awaited_commit_completes()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        f.Broker.StateFileCheckInterval = Timeout.InfiniteTimeSpan; // the test says when the timer checks
        f.Broker.CreateTopic("ledger", TopicOptions.Default with { Durability = Durability.Fsynced, SegmentBytes = 4L << 20 });
        for (var i = 0; i < 5; i++)
        {
            await f.Broker.PublishAsync("ledger", Encoding.UTF8.GetBytes($"m{i}"));
        }

        using var dir = new TempDirectory();
        var blockerPath = Path.Combine(dir.Path, "blocker.pos"); // not a subscription's: the timer's checks do not wait for it
        var path = PositionPath(f, "moved");
        using var entered = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var closeFaults = 0;

        // Every msync of the flusher's is held (files are synced side by side), so the removed file's pending msync that
        // ends first is the one the swap makes when it closes it, and that one fails (the removed file's only: the file
        // written at the path is synced).
        f.Broker.StateFlusher.SyncFault = file =>
        {
            if (file.Path == blockerPath)
            {
                entered.Set();
            }

            Assert.True(release.Wait(TimeSpan.FromSeconds(60)), "the test did not release the flusher");
        };
        f.Broker.StateFlusher.CloseSyncFault = file =>
        {
            if (file.Path == path && Interlocked.Exchange(ref closeFaults, 1) == 0)
            {
                throw new IOException("injected msync fault of the removed file");
            }
        };

        using var blocker = PositionStore.Open(blockerPath, f.Broker.StateFlusher);
        using var s = f.Broker.Subscribe("ledger", SubscriptionOptions.Default with { DurableName = "moved", Start = StartPosition.Earliest });
        blocker.Commit("ledger", 1);
        var blocked = blocker.WaitForSyncAsync(blocker.RequestSync());
        try
        {
            Assert.True(entered.Wait(s_deadline), $"the flusher did not start the blocker's msync within {s_deadline.TotalSeconds} s");
            File.Delete(path);
            var commit = s.CommitAsync("ledger", 3).AsTask(); // its msync is pending in the removed file
            Assert.False(commit.IsCompleted, "the commit's msync is held as the blocker's is");
            f.Broker.StateFileCheckInterval = TimeSpan.FromMilliseconds(20);
            Eventually.True(() => log.Any(l => l.Contains("written again", StringComparison.Ordinal)), "the timer writes moved.pos again", s_deadline);

            // The commit is in the file written at the path, flushed to disk before it got its name: the removed file's
            // failed msync cannot lose it, so it is logged, and the commit is not failed.
            await commit.WaitAsync(s_deadline);
            Assert.Equal(3, PositionIn(path, "ledger"));
            Assert.Equal(1, Volatile.Read(ref closeFaults));
            var line = log.SingleOrDefault(l => l.Contains("injected msync fault of the removed file", StringComparison.Ordinal));
            Assert.True(line is not null && line.Contains(path, StringComparison.Ordinal), $"no line said the removed {path}'s msync failed; log: [{string.Join(" | ", log)}]");
        }
        finally
        {
            release.Set();
        }

        await blocked.WaitAsync(s_deadline);
        await s.CommitAsync("ledger", 4).AsTask().WaitAsync(s_deadline); // the file at the path is synced as before
        Assert.Equal(4, PositionIn(path, "ledger"));
    }

    private static SubscriptionOptions Options(string name) => SubscriptionOptions.Default with { DurableName = name, Start = StartPosition.Earliest };

    private static string PositionPath(BrokerFixture f, string name) => Path.Combine(f.DataDirectory, "subscriptions", name + ".pos");

    private static async Task PublishAsync(BrokerFixture f, int count)
    {
        for (var i = 0; i < count; i++)
        {
            await f.Broker.PublishAsync("jobs", Encoding.UTF8.GetBytes($"job{i}"));
        }
    }

    /// <summary>The position the file at <paramref name="path"/> holds for <paramref name="topic"/> (read from a copy: the file is not opened for writing).</summary>
    private static long? PositionIn(string path, string topic)
    {
        using var dir = new TempDirectory();
        var copy = Path.Combine(dir.Path, "copy.pos");
        File.Copy(path, copy);
        using var store = PositionStore.Open(copy);
        return store.Get(topic);
    }

    private static void AssertLoggedWrittenAgain(ConcurrentQueue<string> log, string path)
    {
        var line = log.FirstOrDefault(l => l.Contains(Removed, StringComparison.Ordinal));
        Assert.True(
            line is not null && line.Contains($"{path} {Removed}", StringComparison.Ordinal) && line.Contains("written again at that path", StringComparison.Ordinal),
            $"no line said the position file {path} was removed while subscribed and written again; log: {string.Join(" | ", log)}");
    }
}
