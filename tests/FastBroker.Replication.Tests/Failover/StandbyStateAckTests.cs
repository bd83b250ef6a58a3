using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using FastBroker.Engine;
using FastBroker.Replication;
using FastBroker.Replication.Internal;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// The standby's STATE_ACK, which releases a commit or a new producer epoch answered in a standby ack mode and ends a
/// hand-over's wait, says the state it covers is on its disk: a file replaced whole was fsynced before its rename and
/// its directory after it, a copy stored in place was msynced. A power loss cannot be staged in process, so the order
/// of the standby's steps is read through its trace (<see cref="StandbyReplica.StateTrace"/>): every sync it records
/// must come between the write it covers and the STATE_ACK. And the standby's copy of a position follows the commits
/// in the order they were made, never stepping back to an older one, but moving back with a commit that does. Two
/// in-process nodes, no witness, a 30 s heartbeat.
/// </summary>
public sealed class StandbyStateAckTests
{
    private const string Jobs = "stateack.jobs";
    private const string Feed = "stateack.feed";
    private const string Keeper = "subscriptions/keeper.pos";
    private const string Workers = "topics/" + Jobs + "/groups/workers.state";
    private const ulong Id = 0x0E90_C400_0000_0071;

    private static readonly TimeSpan s_interval = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task State_files_replaced_whole_are_fsynced_with_their_directories_before_the_STATE_ACK()
    {
        using var dir = new TempDirectory();
        var (a, b) = await StartAsync(dir);
        await using (a)
        await using (b)
        {
            var broker = a.Broker!;
            var gate = broker.Replication!;
            await PositionCopies.PublishAsync(broker, Feed, 10);
            broker.InitProducer(Id);
            using var keeper = broker.Subscribe(Feed, SubscriptionOptions.Default with { DurableName = "keeper", Start = StartPosition.Committed });
            keeper.Commit(Feed, 5);
            await Eventually.TrueAsync(() => PositionCopies.PositionIn(dir.Combine("b"), Keeper, Feed) == 5, "b holds keeper's position 5", s_deadline);

            var trace = new Trace(b);
            broker.InitProducer(Id); // a new epoch: producers.epochs whole, then a version
            keeper.Commit(Feed, 8);
            var version = gate.RequestStateFiles(); // as a hand-over: keeper.pos whole, then a version
            await Eventually.TrueAsync(() => gate.StateApplied >= version, $"b acknowledges state version {version}", s_deadline);

            var steps = trace.Steps;
            Assert.Contains(("rename", ProducerCheckpointFile.EpochsName), steps);
            Assert.Contains(("rename", Keeper), steps);
            if (Trace.Violation(steps, wholeFiles: true, inPlace: false) is { } violation)
            {
                Assert.Fail(violation);
            }
        }
    }

    [Fact]
    public async Task The_STATE_ACK_follows_the_msync_of_the_state_stored_in_place()
    {
        using var dir = new TempDirectory();
        var (a, b) = await StartAsync(dir);
        await using (a)
        await using (b)
        {
            var broker = a.Broker!;
            await PositionCopies.PublishAsync(broker, Jobs, 3);
            await PositionCopies.PublishAsync(broker, Feed, 10);
            using var member = broker.JoinGroup(Jobs, "workers", prefetch: 10);
            var delivered = await ReadAsync(member, 3);
            using var keeper = broker.Subscribe(Feed, SubscriptionOptions.Default with { DurableName = "keeper", Start = StartPosition.Committed });
            keeper.Commit(Feed, 5);
            Assert.True(member.Ack(delivered[0])); // the group's state goes to b within 20 ms of an ack
            await Eventually.TrueAsync(
                () => PositionCopies.PositionIn(dir.Combine("b"), Keeper, Feed) == 5 && GroupAckStore.ReadFloor(Path.Combine(dir.Combine("b"), Workers)) == 1,
                "b holds keeper's position 5 and the group's floor 1",
                s_deadline);

            // The standby's background msyncs fail from here on: only a sync made for the STATE_ACK can cover a store.
            b.Replica!.StateFlusher.SyncFault = _ => throw new IOException("held off by the test");
            var trace = new Trace(b);
            Assert.True(member.Ack(delivered[1]));
            await Eventually.TrueAsync(() => trace.Steps.Contains(("store", Workers)), "b stores the group's new state", s_deadline);
            keeper.Commit(Feed, 7);
            await Eventually.TrueAsync(
                () => trace.Steps.SkipWhile(s => s != ("store", Keeper)).Any(s => s.Step == "ack"),
                "b applies keeper's position 7 and acknowledges it",
                s_deadline);

            var steps = trace.Steps;
            if (Trace.Violation(steps, wholeFiles: true, inPlace: true) is { } violation)
            {
                Assert.Fail(violation);
            }
        }
    }

    [Fact]
    public async Task A_commit_made_while_a_hand_over_reads_the_position_files_never_steps_the_standby_back()
    {
        using var dir = new TempDirectory();
        var (a, b) = await StartAsync(dir);
        await using (a)
        await using (b)
        {
            var broker = a.Broker!;
            var gate = broker.Replication!;
            await PositionCopies.PublishAsync(broker, Feed, 10);
            using var keeper = broker.Subscribe(Feed, SubscriptionOptions.Default with { DurableName = "keeper", Start = StartPosition.Committed });
            keeper.Commit(Feed, 5);
            await Eventually.TrueAsync(() => PositionCopies.PositionIn(dir.Combine("b"), Keeper, Feed) == 5, "b holds keeper's position 5", s_deadline);

            // What b holds after each frame that changes keeper's copy: the file replaced whole, each POSITIONS applied.
            var seen = new ConcurrentQueue<long?>();
            b.Replica!.StateTrace = (step, what) =>
            {
                if (step == "positions" || (step == "rename" && what == Keeper))
                {
                    seen.Enqueue(PositionCopies.PositionIn(dir.Combine("b"), Keeper, Feed));
                }
            };

            // On the replicator's thread: a commit of 6 and a hand-over's request queued just before one drain, a commit
            // of 8 just after it (so in the files it reads next, and shipped as an update in the pass after).
            var stage = 0;
            var requested = 0L;
            var link = a.Replicator!.Link!;
            link.StateDrained = drained =>
            {
                if (!drained && stage == 0)
                {
                    stage = 1;
                    keeper.Commit(Feed, 6);
                    Volatile.Write(ref requested, gate.RequestStateFiles());
                }
                else if (drained && stage == 1)
                {
                    stage = 2;
                    keeper.Commit(Feed, 8);
                }
            };
            await broker.PublishAsync(Feed, Encoding.ASCII.GetBytes("wake")); // a pass of the replicator
            await Eventually.TrueAsync(
                () => Volatile.Read(ref requested) != 0 && gate.StateApplied > Volatile.Read(ref requested) && PositionCopies.PositionIn(dir.Combine("b"), Keeper, Feed) == 8,
                "b acknowledges the hand-over's state and the commit of 8 after it",
                s_deadline);
            link.StateDrained = null;

            var positions = seen.ToArray();
            Assert.True(positions.Length >= 2, $"b's copy of keeper changed {positions.Length} times");
            for (var i = 1; i < positions.Length; i++)
            {
                Assert.True(
                    positions[i] >= positions[i - 1],
                    $"b's position of keeper in {Feed} went {string.Join(" → ", positions)} (commits 5, 6, 8): it stepped back");
            }
        }
    }

    [Fact]
    public async Task A_commit_that_moves_a_position_back_reaches_the_standby()
    {
        using var dir = new TempDirectory();
        var (a, b) = await StartAsync(dir);
        await using (a)
        await using (b)
        {
            var broker = a.Broker!;
            await PositionCopies.PublishAsync(broker, Feed, 10);
            using var keeper = broker.Subscribe(Feed, SubscriptionOptions.Default with { DurableName = "keeper", Start = StartPosition.Committed });
            keeper.Commit(Feed, 9);
            await Eventually.TrueAsync(() => PositionCopies.PositionIn(dir.Combine("b"), Keeper, Feed) == 9, "b holds keeper's position 9", s_deadline);

            // A consumer may commit a lower position (to process those messages again): the standby follows it, as an
            // update and in a file a hand-over sends whole.
            keeper.Commit(Feed, 4);
            await Eventually.TrueAsync(() => PositionCopies.PositionIn(dir.Combine("b"), Keeper, Feed) == 4, "b holds keeper's position 4 after 9", s_deadline);
            keeper.Commit(Feed, 2);
            var version = broker.Replication!.RequestStateFiles();
            await Eventually.TrueAsync(() => broker.Replication!.StateApplied >= version, $"b acknowledges state version {version}", s_deadline);
            Assert.Equal(2, PositionCopies.PositionIn(dir.Combine("b"), Keeper, Feed));
        }
    }

    private static Task<(ReplicatedNode Primary, ReplicatedNode Standby)> StartAsync(TempDirectory dir) =>
        InProcessPair.StartAsync(dir, BrokerOptions.Default, o => o with { HeartbeatInterval = s_interval, HeartbeatTimeout = s_interval * 2 });


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


    /// <summary>The standby's steps with its state files, in the order taken.</summary>
    private sealed class Trace
    {
        private readonly List<(string Step, string What)> _steps = [];

        public Trace(ReplicatedNode standby) =>
            standby.Replica!.StateTrace = (step, what) =>
            {
                lock (_steps)
                {
                    _steps.Add((step, what));
                }
            };

        public List<(string Step, string What)> Steps
        {
            get
            {
                lock (_steps)
                {
                    return [.. _steps];
                }
            }
        }

        /// <summary>
        /// The first STATE_ACK sent before a sync of what it covers, described; null when there is none. An ACK covers
        /// what the receive thread handed off before the durable thread took its batch (<c>handoff</c>, <c>batch</c>):
        /// the receive thread goes on applying frames while the durable thread syncs, and a step after that hand-off
        /// is the next STATE_ACK's to cover. Each step is numbered; what is pending keeps the number of its first step
        /// since its last sync.
        /// </summary>
        public static string? Violation(List<(string Step, string What)> steps, bool wholeFiles, bool inPlace)
        {
            var written = new HashSet<string>(); // temporary files written, not fsynced yet
            var renamedUnsynced = new List<(string File, int At)>(); // renamed over the copy with their data not fsynced
            var directories = new Dictionary<string, (string File, int At)>(); // directory → the first file renamed in it since its last fsync
            var stored = new Dictionary<string, int>(); // mapped copies → their first store since their last msync
            int handedOff = -1, covered = -1;
            for (var at = 0; at < steps.Count; at++)
            {
                var (step, what) = steps[at];
                switch (step)
                {
                    case "write":
                        written.Add(what);
                        break;
                    case "fsync":
                        written.Remove(what);
                        break;
                    case "rename":
                        if (written.Remove(what))
                        {
                            renamedUnsynced.Add((what, at));
                        }

                        directories.TryAdd(Path.GetDirectoryName(what) ?? "", (what, at));
                        break;
                    case "fsync-dir":
                        directories.Remove(what);
                        break;
                    case "store":
                        stored.TryAdd(what, at);
                        break;
                    case "msync":
                        stored.Remove(what);
                        break;
                    case "handoff":
                        handedOff = at;
                        break;
                    case "batch":
                        covered = handedOff;
                        break;
                    case "ack":
                        if (wholeFiles && renamedUnsynced.FirstOrDefault(r => r.At < covered) is { File: { } renamed })
                        {
                            return $"STATE_ACK {what} was sent after {renamed} was renamed over the copy without an fsync of its data ({Describe(steps)})";
                        }

                        if (wholeFiles && directories.FirstOrDefault(d => d.Value.At < covered) is { Key: { } directory, Value.File: var file })
                        {
                            return $"STATE_ACK {what} was sent after {file} was renamed with its directory '{directory}' not fsynced since ({Describe(steps)})";
                        }

                        if (inPlace && stored.Where(p => p.Value < covered).Select(p => p.Key).Order(StringComparer.Ordinal).ToArray() is { Length: > 0 } unsynced)
                        {
                            return $"STATE_ACK {what} was sent with {string.Join(", ", unsynced)} stored in place and not msynced since ({Describe(steps)})";
                        }

                        break;
                }
            }

            return null;
        }

        private static string Describe(List<(string Step, string What)> steps) =>
            string.Join("; ", steps.Select(s => string.Create(CultureInfo.InvariantCulture, $"{s.Step} {s.What}")));
    }
}
