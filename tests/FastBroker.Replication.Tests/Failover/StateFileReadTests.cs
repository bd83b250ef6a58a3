using System.Collections.Concurrent;
using FastBroker.Engine;
using FastBroker.Replication;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// The primary reads a state file again only when it may have changed: a heartbeat's check reads the files a commit
/// marked, new files and those whose length or last write time changed; a group-state send reads only the changed
/// group's file; every <see cref="Replication.Internal.PrimaryReplicator.StateRescanInterval"/> a check reads them all.
/// Counted on the primary (<c>StateFileRead</c>, the link's <c>StateBytesRead</c>). Two in-process nodes, no witness,
/// 50 durable subscriptions, heartbeats every 20 ms.
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class StateFileReadTests
{
    private const string Jobs = "scan.jobs";
    private const string Feed = "scan.feed";
    private const int Subscriptions = 50;
    private const string Workers = "topics/" + Jobs + "/groups/workers.state";

    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Heartbeats_and_group_state_sends_read_no_unchanged_position_file()
    {
        using var dir = new TempDirectory();
        var (a, b) = await StartAsync(dir);
        await using (a)
        await using (b)
        {
            var broker = a.Broker!;
            a.Replicator!.StateRescanInterval = TimeSpan.FromHours(1);
            var reads = new ConcurrentQueue<string>();
            a.Replicator.StateFileRead = reads.Enqueue;
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
                var beats = link.HeartbeatsSent;
                await Eventually.TrueAsync(() => link.HeartbeatsSent >= beats + 2, "two more heartbeats", s_deadline);

                // No commit from here: 5 acks (a group-state send each) and at least 10 heartbeats.
                var start = reads.Count;
                var bytes = link.StateBytesRead;
                beats = link.HeartbeatsSent;
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
                foreach (var s in subs)
                {
                    s.Dispose();
                }
            }
        }
    }

    [Fact]
    public async Task A_change_nothing_signalled_reaches_the_standby()
    {
        using var dir = new TempDirectory();
        var (a, b) = await StartAsync(dir);
        await using (a)
        await using (b)
        {
            var broker = a.Broker!;
            a.Replicator!.StateRescanInterval = TimeSpan.FromHours(1);
            var copyOfB = dir.Combine("b");
            await PositionCopies.PublishAsync(broker, Feed, 20);
            using (var keeper = broker.Subscribe(Feed, SubscriptionOptions.Default with { DurableName = "keeper", Start = StartPosition.Committed }))
            {
                keeper.Commit(Feed, 3);
                await Eventually.TrueAsync(() => PositionCopies.PositionIn(copyOfB, "subscriptions/keeper.pos", Feed) == 3, "b holds keeper's position 3", s_deadline);
            }

            // Written behind the broker's back (the subscription closed): another length or time, read at the next check.
            var path = Path.Combine(dir.Combine("a"), "subscriptions", "keeper.pos");
            SetPosition(path, 7);
            await Eventually.TrueAsync(() => PositionCopies.PositionIn(copyOfB, "subscriptions/keeper.pos", Feed) == 7, "b holds keeper's position 7 (its file's time changed)", s_deadline);

            // The same, length and time kept (a file renamed over it with the time of the one it replaces): only the
            // rescan reads it.
            var link = a.Replicator.Link!;
            var beats = link.HeartbeatsSent;
            await Eventually.TrueAsync(() => link.HeartbeatsSent >= beats + 2, "two more heartbeats", s_deadline);
            var tmp = path + ".new";
            File.Copy(path, tmp);
            SetPosition(tmp, 9);
            File.SetLastWriteTimeUtc(tmp, File.GetLastWriteTimeUtc(path));
            File.Move(tmp, path, overwrite: true);
            beats = link.HeartbeatsSent;
            await Eventually.TrueAsync(() => link.HeartbeatsSent >= beats + 5, "5 more heartbeats", s_deadline);
            Assert.Equal(7, PositionCopies.PositionIn(copyOfB, "subscriptions/keeper.pos", Feed));
            a.Replicator.StateRescanInterval = TimeSpan.FromMilliseconds(100);
            await Eventually.TrueAsync(() => PositionCopies.PositionIn(copyOfB, "subscriptions/keeper.pos", Feed) == 9, "b holds keeper's position 9 (the rescan read it)", s_deadline);
        }
    }

    private static async Task<(ReplicatedNode Primary, ReplicatedNode Standby)> StartAsync(TempDirectory dir) =>
        await InProcessPair.StartAsync(
            dir,
            BrokerOptions.Default,
            o => o with { HeartbeatInterval = TimeSpan.FromMilliseconds(20), HeartbeatTimeout = TimeSpan.FromSeconds(5) });

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
