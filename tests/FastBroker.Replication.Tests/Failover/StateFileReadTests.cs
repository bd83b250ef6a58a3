using System.Collections.Concurrent;
using FastBroker.Engine;
using FastBroker.Replication;
using FastBroker.Replication.Internal;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// The primary reads a state file again only when it may have changed, and asks the file system about a fixed few
/// paths per heartbeat: a heartbeat's check reads the files a commit marked, the producers' files whose length or time
/// changed and new position files (listing <c>subscriptions/</c> when its time moved); a group-state send reads only
/// the changed group's file; a change nothing signalled is read by the rolling pass, a bounded slice per heartbeat,
/// every file within <see cref="PrimaryReplicator.StateRescanInterval"/>. Counted on the primary (<c>StateFileRead</c>,
/// <c>StateChecked</c>, the link's <c>StateBytesRead</c>). Two in-process nodes, no witness, heartbeats every 20 ms.
/// </summary>
public sealed class StateFileReadTests
{
    private const string Jobs = "scan.jobs";
    private const string Feed = "scan.feed";
    private const int Subscriptions = 50;
    private const string Workers = "topics/" + Jobs + "/groups/workers.state";
    private const int ManySubscriptions = 100;

    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan s_heartbeat = TimeSpan.FromMilliseconds(20);

    [Fact]
    public Task Heartbeats_and_group_state_sends_read_no_unchanged_position_file() =>
        WithPairAsync(async (dir, a) =>
        {
            var broker = a.Broker!;
            var reads = new ConcurrentQueue<string>();
            a.Replicator!.StateFileRead = reads.Enqueue;
            var copyOfB = dir.Combine("b");
            await PositionCopies.PublishAsync(broker, Jobs, 10);
            await PositionCopies.PublishAsync(broker, Feed, 5);
            broker.InitProducer(0x0E90_C400_0000_0091);
            var subs = new List<Subscription>();
            try
            {
                for (var i = 0; i < Subscriptions; i++)
                {
                    var s = broker.Subscribe(Feed, SubscriptionOptions.Default with { DurableName = $"reader{i:D2}", Start = StartPosition.Committed });
                    subs.Add(s);
                    s.Commit(Feed, 1);
                }

                using var member = broker.JoinGroup(Jobs, "workers", prefetch: 10);
                var delivered = await ReadAsync(member, 10);
                Assert.True(member.Ack(delivered[0]));
                await Eventually.TrueAsync(
                    () => Enumerable.Range(0, Subscriptions).All(i => PositionCopies.PositionIn(copyOfB, $"subscriptions/reader{i:D2}.pos", Feed) == 1) && Floor(copyOfB) == 1,
                    "b holds every subscription's position 1 and the group's floor 1",
                    s_deadline);

                // Two heartbeats' checks after that: each commit's mark has been taken (its file read once more).
                var link = a.Replicator.Link!;
                await MoreHeartbeatsAsync(link, 2, "two more heartbeats");

                // No commit from here: 5 acks (a group-state send each) and at least 10 heartbeats.
                var start = reads.Count;
                var bytes = link.StateBytesRead;
                var beats = link.HeartbeatsSent;
                for (var i = 1; i <= 5; i++)
                {
                    Assert.True(member.Ack(delivered[i]));
                    var floor = i + 1;
                    await Eventually.TrueAsync(() => Floor(copyOfB) == floor, $"b holds the group's floor {floor}", s_deadline);
                }

                await Eventually.TrueAsync(() => link.HeartbeatsSent >= beats + 10, "10 more heartbeats", s_deadline);
                var phase = reads.Skip(start).ToArray();
                var read = link.StateBytesRead - bytes;
                var others = phase.Where(p => p != Workers).ToArray();
                var workersLength = new FileInfo(Path.Combine(dir.Combine("a"), Workers)).Length;

                // The rule: with no commit, no position file and no producers' checkpoint is read again; the group's
                // file only for its changes, at most once per ack (the heartbeats find it read since).
                Assert.True(
                    others.Length == 0,
                    $"{link.HeartbeatsSent - beats} heartbeats and 5 group-state sends with no commit read {others.Length} other state file(s) again ({read} bytes in all, {others.Count(p => p.StartsWith("subscriptions/", StringComparison.Ordinal))} position files); expected none");
                var workersReads = phase.Length;
                Assert.InRange(workersReads, 1, 5);
                Assert.Equal(workersReads * workersLength, read);
            }
            finally
            {
                Dispose(subs);
            }
        });

    [Fact]
    public Task A_change_nothing_signalled_reaches_the_standby_by_the_periodic_pass() =>
        WithPairAsync(async (dir, a) =>
        {
            var broker = a.Broker!;
            var copyOfB = dir.Combine("b");
            await PositionCopies.PublishAsync(broker, Feed, 20);
            using (var keeper = broker.Subscribe(Feed, SubscriptionOptions.Default with { DurableName = "keeper", Start = StartPosition.Committed }))
            {
                keeper.Commit(Feed, 3);
                await Eventually.TrueAsync(() => PositionCopies.PositionIn(copyOfB, "subscriptions/keeper.pos", Feed) == 3, "b holds keeper's position 3", s_deadline);
            }

            // Written behind the broker's back (the subscription closed), in place (its time changes) and by a file
            // renamed over it with the time of the one it replaces: no heartbeat's check looks at it (nothing signalled
            // it, no file came or went), the periodic pass reads it.
            var link = a.Replicator!.Link!;
            var path = Path.Combine(dir.Combine("a"), "subscriptions", "keeper.pos");
            await MoreHeartbeatsAsync(link, 2, "two more heartbeats");
            SetPosition(path, 7);
            await MoreHeartbeatsAsync(link, 5, "5 more heartbeats");
            Assert.Equal(3, PositionCopies.PositionIn(copyOfB, "subscriptions/keeper.pos", Feed));
            a.Replicator.StateRescanInterval = TimeSpan.FromMilliseconds(100);
            await Eventually.TrueAsync(() => PositionCopies.PositionIn(copyOfB, "subscriptions/keeper.pos", Feed) == 7, "b holds keeper's position 7 (the periodic pass read it)", s_deadline);

            a.Replicator.StateRescanInterval = TimeSpan.FromHours(1);
            await MoreHeartbeatsAsync(link, 2, "two more heartbeats");
            var tmp = path + ".new";
            File.Copy(path, tmp);
            SetPosition(tmp, 9);
            File.SetLastWriteTimeUtc(tmp, File.GetLastWriteTimeUtc(path));
            File.Move(tmp, path, overwrite: true);
            await MoreHeartbeatsAsync(link, 5, "5 more heartbeats");
            Assert.Equal(7, PositionCopies.PositionIn(copyOfB, "subscriptions/keeper.pos", Feed));
            a.Replicator.StateRescanInterval = TimeSpan.FromMilliseconds(100);
            await Eventually.TrueAsync(() => PositionCopies.PositionIn(copyOfB, "subscriptions/keeper.pos", Feed) == 9, "b holds keeper's position 9 (the periodic pass read it)", s_deadline);
        });

    /// <summary>
    /// With many position files and no commit, a heartbeat's check asks the file system about a fixed few files and
    /// directories (the producers' two files, the subscriptions directory), not about each state file, and reads none.
    /// </summary>
    [Fact]
    public Task A_heartbeats_check_stats_a_fixed_few_paths_however_many_state_files_there_are() =>
        WithManySubscriptionsAsync(async (dir, replicator, subs) =>
        {
            var checks = new ConcurrentQueue<StateCheckCost>();
            replicator.StateChecked = checks.Enqueue;
            await Eventually.TrueAsync(() => checks.Count >= 10, "10 heartbeats' checks", s_deadline);
            replicator.StateChecked = null;
            var costs = checks.ToArray();
            Assert.True(
                costs.All(c => c.Stats <= 4 && c.Reads == 0),
                $"with {ManySubscriptions} position files and no commit, heartbeats' checks stat'ed [{string.Join(", ", costs.Select(c => c.Stats))}] paths and read [{string.Join(", ", costs.Select(c => c.Reads))}] files; expected at most 4 and none");
        });

    /// <summary>
    /// The periodic pass reads a slice of the state files at each heartbeat (at most the files the period's first half
    /// holds heartbeats for: ceil(files × 2 × heartbeat / period)), not all at once, and still reads every file within a
    /// period: a change nothing signalled is read within period / heartbeat checks of it.
    /// </summary>
    [Fact]
    public Task The_periodic_pass_reads_a_bounded_slice_per_heartbeat_and_every_file_within_the_period() =>
        WithManySubscriptionsAsync(async (dir, replicator, subs) =>
        {
            var copyOfB = dir.Combine("b");
            var root = dir.Combine("a");
            var files = Directory.EnumerateFiles(Path.Combine(root, "subscriptions"), "*.pos").Count()
                + Directory.EnumerateFiles(root, "producers.*").Count();
            var period = TimeSpan.FromSeconds(1);
            var bound = (int)Math.Ceiling(files * 2 * s_heartbeat.TotalMilliseconds / period.TotalMilliseconds);
            var target = "subscriptions/reader07.pos";
            var checks = new ConcurrentQueue<StateCheckCost>();
            var changedAt = -1;
            var readAt = -1;
            replicator.StateFileRead = p =>
            {
                if (p == target && Volatile.Read(ref changedAt) >= 0 && readAt < 0)
                {
                    readAt = checks.Count;
                }
            };
            replicator.StateChecked = checks.Enqueue;
            replicator.StateRescanInterval = period;
            await Eventually.TrueAsync(() => checks.Count >= 100, "100 heartbeats' checks with the 1 s period", s_deadline);

            // reader07's file, changed behind the broker's back: length and time kept.
            subs[7].Dispose();
            var path = Path.Combine(root, target);
            var tmp = path + ".new";
            File.Copy(path, tmp);
            SetPosition(tmp, 4);
            File.SetLastWriteTimeUtc(tmp, File.GetLastWriteTimeUtc(path));
            File.Move(tmp, path, overwrite: true);
            Volatile.Write(ref changedAt, checks.Count);
            await Eventually.TrueAsync(() => PositionCopies.PositionIn(copyOfB, target, Feed) == 4, "b holds reader07's position 4 (the periodic pass read it)", s_deadline);
            var read = Volatile.Read(ref readAt);
            replicator.StateChecked = null;
            replicator.StateFileRead = null;

            var costs = checks.ToArray();
            var sweep = costs.Select(c => c.SweepReads).ToArray();
            Assert.True(
                costs.All(c => c.Reads <= bound),
                $"{costs.Length} checks of {files} state files with a {period.TotalSeconds} s period and {s_heartbeat.TotalMilliseconds} ms heartbeats read up to {costs.Max(c => c.Reads)} files in one check (the periodic pass {sweep.Max()}); expected at most {bound}");
            Assert.True(sweep.Sum() >= files, $"the periodic pass read {sweep.Sum()} files in {costs.Length} checks; expected every one of the {files}");
            var within = (int)(period / s_heartbeat) + 1;
            Assert.True(read >= 0 && read - changedAt <= within, $"reader07's file was read {read - changedAt} checks after its change; expected within {within} (a period)");
        });

    /// <summary>
    /// Runs <paramref name="test"/> with a started pair's directory and primary (a, b its standby), the primary's periodic
    /// pass an hour apart: it runs where a test shortens it.
    /// </summary>
    private static async Task WithPairAsync(Func<TempDirectory, ReplicatedNode, Task> test)
    {
        using var dir = new TempDirectory();
        var (a, b) = await InProcessPair.StartAsync(
            dir,
            BrokerOptions.Default,
            o => o with { HeartbeatInterval = s_heartbeat, HeartbeatTimeout = TimeSpan.FromSeconds(5) });
        await using (a)
        await using (b)
        {
            a.Replicator!.StateRescanInterval = TimeSpan.FromHours(1);
            await test(dir, a);
        }
    }

    /// <summary>
    /// <see cref="WithPairAsync"/> with <see cref="ManySubscriptions"/> subscriptions (<see cref="SubscribeManyAsync"/>)
    /// and two heartbeats since they were held by the standby (each commit's mark taken); disposed after
    /// <paramref name="test"/>.
    /// </summary>
    private static Task WithManySubscriptionsAsync(Func<TempDirectory, PrimaryReplicator, List<Subscription>, Task> test) =>
        WithPairAsync(async (dir, a) =>
        {
            var subs = await SubscribeManyAsync(a.Broker!, dir.Combine("b"), ManySubscriptions);
            try
            {
                var replicator = a.Replicator!;
                await MoreHeartbeatsAsync(replicator.Link!, 2, "two more heartbeats (each commit's mark taken)");
                await test(dir, replicator, subs);
            }
            finally
            {
                Dispose(subs);
            }
        });

    /// <summary>
    /// A subscription created: <c>subscriptions/</c> is listed when its time moves, and once more when that time was
    /// too close to the listing (a coarse clock may stamp an entry added just after it the same), not at each heartbeat
    /// of those 2 s (a listing allocates); a position file that appeared after a listing, the directory's time not moved,
    /// still reaches the standby.
    /// </summary>
    [Fact]
    public Task A_new_subscription_lists_the_directory_once_per_change_not_at_each_heartbeat() =>
        WithPairAsync(async (dir, a) =>
        {
            var copyOfB = dir.Combine("b");
            var subs = await SubscribeManyAsync(a.Broker!, copyOfB, 2);
            try
            {
                await MoreHeartbeatsAsync(a.Replicator!.Link!, 2, "two more heartbeats");
                var checks = new ConcurrentQueue<StateCheckCost>();
                a.Replicator!.StateChecked = checks.Enqueue;
                subs.Add(a.Broker!.Subscribe(Feed, SubscriptionOptions.Default with { DurableName = "fresh", Start = StartPosition.Committed }));
                subs[^1].Commit(Feed, 2);
                await Eventually.TrueAsync(() => PositionCopies.PositionIn(copyOfB, "subscriptions/fresh.pos", Feed) == 2, "b holds fresh's position 2", s_deadline);
                var seen = checks.Count;
                await Eventually.TrueAsync(() => checks.Count >= seen + 50, "50 more heartbeats' checks", s_deadline);
                a.Replicator!.StateChecked = null;
                var listings = checks.Select(c => c.Listings).ToArray();
                Assert.True(
                    listings.Sum() <= 3,
                    $"a new subscription's file: {listings.Length} heartbeats' checks listed subscriptions/ {listings.Sum()} times [{string.Join(", ", listings)}]; expected at most 3 (its change, and once after the 2 s a coarse clock may share)");

                // A file added after a listing with the directory's time as it was then (a coarse clock): a time in the
                // future, so that each listing finds it too close, and the file after the listing it has set off.
                var subscriptions = Path.Combine(dir.Combine("a"), "subscriptions");
                var stamp = DateTime.UtcNow.AddMinutes(1);
                Directory.SetLastWriteTimeUtc(subscriptions, stamp);
                checks = new ConcurrentQueue<StateCheckCost>();
                a.Replicator!.StateChecked = checks.Enqueue;
                await Eventually.TrueAsync(() => checks.Any(c => c.Listings > 0), "a check lists subscriptions/ (its time moved)", s_deadline);
                a.Replicator!.StateChecked = null;
                File.Copy(Path.Combine(subscriptions, "fresh.pos"), Path.Combine(subscriptions, "late.pos"));
                Directory.SetLastWriteTimeUtc(subscriptions, stamp);
                await Eventually.TrueAsync(() => PositionCopies.PositionIn(copyOfB, "subscriptions/late.pos", Feed) == 2, "b holds late.pos, added after the listing, the directory's time unmoved", s_deadline);
            }
            finally
            {
                Dispose(subs);
            }
        });

    /// <summary>Waits until the primary has sent <paramref name="count"/> more heartbeats (each after its check).</summary>
    private static async Task MoreHeartbeatsAsync(StandbyLink link, int count, string because)
    {
        var beats = link.HeartbeatsSent;
        await Eventually.TrueAsync(() => link.HeartbeatsSent >= beats + count, because, s_deadline);
    }

    /// <summary><paramref name="count"/> durable subscriptions of <see cref="Feed"/> (reader00, …), each committed at 1 and held so by the standby.</summary>
    private static async Task<List<Subscription>> SubscribeManyAsync(Broker broker, string copyOfB, int count)
    {
        await PositionCopies.PublishAsync(broker, Feed, 5);
        var subs = new List<Subscription>();
        try
        {
            for (var i = 0; i < count; i++)
            {
                var s = broker.Subscribe(Feed, SubscriptionOptions.Default with { DurableName = $"reader{i:D2}", Start = StartPosition.Committed });
                subs.Add(s);
                s.Commit(Feed, 1);
            }

            await Eventually.TrueAsync(
                () => Enumerable.Range(0, count).All(i => PositionCopies.PositionIn(copyOfB, $"subscriptions/reader{i:D2}.pos", Feed) == 1),
                $"b holds the {count} subscriptions' position 1",
                s_deadline);
            return subs;
        }
        catch
        {
            Dispose(subs);
            throw;
        }
    }

    private static void Dispose(List<Subscription> subs)
    {
        foreach (var s in subs)
        {
            s.Dispose();
        }
    }

    /// <summary>Stores <paramref name="nextOffset"/> as the first entry's position (the file's only topic), as a commit does.</summary>
    private static void SetPosition(string path, long nextOffset)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
        f.Position = PositionStore.HeaderBytes + 256;
        f.Write(BitConverter.GetBytes(nextOffset + 1));
        f.Flush(flushToDisk: true);
    }

    private static long? Floor(string copyOfB) => GroupAckStore.ReadFloor(Path.Combine(copyOfB, Workers));

    private static async Task<List<Message>> ReadAsync(WorkQueueMember member, int count)
    {
        var delivered = new List<Message>();
        using var cts = new CancellationTokenSource(s_deadline);
        await foreach (var m in member.ReadAllAsync(cts.Token))
        {
            delivered.Add(m);
            if (delivered.Count == count)
            {
                break;
            }
        }

        return delivered;
    }
}
