using System.Collections.Concurrent;
using FastBroker.Engine;
using FastBroker.Replication;
using FastBroker.Replication.Internal;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A state file the primary no longer has is not kept by the standby: a durable subscription's position file removed
/// on the primary while the link is up (its heartbeat's check finds it gone and sends STATE_GONE), and a position file
/// and a group's state removed while the standby was detached (its STATE_DIGESTS report copies the primary lacks, which
/// the attach tells it to remove; a copy they leave out, the standby asks for after the attach, and the primary, which
/// does not have it, tells it to remove). The promoted standby then does not bring the subscription back with its old
/// position. Every other copy stays. A group's state removed on the primary while the group is open, and a position file
/// removed while subscribed, are written again there by the broker (docs/broker.md), and the standby holds them again.
/// Two in-process nodes, no witness.
/// </summary>
public sealed class StateFileRemovalTests
{
    private const string Jobs = "removal.jobs";
    private const string Feed = "removal.feed";
    private const string Gone = "subscriptions/gone.pos";
    private const string Kept = "subscriptions/kept.pos";
    private const string Workers = "topics/" + Jobs + "/groups/workers.state";

    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_position_file_removed_on_the_primary_is_removed_from_the_standby_and_its_promotion_does_not_bring_the_subscription_back()
    {
        using var dir = new TempDirectory();
        var log = new List<string>();
        var told = new ConcurrentQueue<string>();
        // A 10 s heartbeat timeout: a loaded machine must not detach b (an attach would tell it about the removal too).
        var (a, b) = await InProcessPair.StartAsync(dir, BrokerOptions.Default, o => o with { HeartbeatTimeout = TimeSpan.FromSeconds(10), Log = Keep(log) });
        await using (b)
        {
            var copyOfB = dir.Combine("b");
            var wrong = new List<string>();
            await using (a)
            {
                var broker = a.Broker!;
                a.Replicator!.StateFileGone = told.Enqueue;
                await PositionCopies.PublishAsync(broker, Feed, 20);
                using var kept = Durable(broker, "kept");
                kept.Commit(Feed, 5);
                using (var gone = Durable(broker, "gone"))
                {
                    gone.Commit(Feed, 12);
                    await Eventually.TrueAsync(
                        () => PositionCopies.PositionIn(copyOfB, Gone, Feed) == 12 && PositionCopies.PositionIn(copyOfB, Kept, Feed) == 5,
                        "b holds gone's position 12 and kept's 5",
                        s_deadline);
                }

                var link = a.Replicator.Link;
                File.Delete(Path.Combine(dir.Combine("a"), Gone)); // the subscription removed on a: its position file deleted
                if (!Eventually.TryWait(() => !File.Exists(Path.Combine(copyOfB, Gone)), s_deadline))
                {
                    wrong.Add($"b still holds its copy of {Gone} {s_deadline.TotalSeconds} s after a removed the file (a told b to remove [{string.Join(", ", told)}]; a's state files: [{string.Join(", ", StateFilesOf(dir.Combine("a")))}], b's: [{string.Join(", ", StateFilesOf(copyOfB))}])");
                }
                else
                {
                    Assert.Equal<string>([Gone], told);
                    Assert.True(
                        Eventually.TryWait(() => Lines(log).Any(l => l.Contains($"state file {Gone} removed: the primary no longer has it", StringComparison.Ordinal)), s_deadline), // logged after the removal
                        $"no line says b removed {Gone}: [{string.Join(" | ", Lines(log))}]");
                }

                // The link went on (no attach told b), and b's other copy is still there and followed.
                kept.Commit(Feed, 7);
                await Eventually.TrueAsync(() => PositionCopies.PositionIn(copyOfB, Kept, Feed) == 7, "b holds kept's position 7", s_deadline);
                Assert.Same(link, a.Replicator.Link);
            }

            // a is gone for good: b, promoted by hand, opens its own copies.
            await b.PromoteAsync().WaitAsync(s_deadline);
            await Eventually.TrueAsync(() => b.Role == NodeRole.Primary && b.Broker is not null, "b serves as primary", s_deadline);
            using var again = Durable(b.Broker!, "gone");
            using var keptOnB = Durable(b.Broker!, "kept");
            if (again.Positions[Feed] != 0)
            {
                wrong.Add($"a durable subscription 'gone' on the promoted b starts at {again.Positions[Feed]}: the subscription removed on a came back with its old position (12), not anew from the oldest message (0)");
            }

            Assert.True(wrong.Count == 0, string.Join("; ", wrong));
            Assert.Equal(7, keptOnB.Positions[Feed]);
        }
    }

    [Fact]
    public async Task A_position_file_and_a_group_state_removed_while_the_standby_was_detached_are_removed_from_it_at_the_attach()
    {
        using var dir = new TempDirectory();
        var log = new List<string>();
        ReplicationOptions? optionsOfA = null;
        var (a, b) = await InProcessPair.StartAsync(dir, BrokerOptions.Default, o =>
        {
            var options = o with { HeartbeatTimeout = TimeSpan.FromSeconds(10), Log = Keep(log) };
            optionsOfA = options.NodeId == "a" ? options : optionsOfA;
            return options;
        });
        await using (b)
        {
            var copyOfB = dir.Combine("b");
            var stateOfA = dir.Combine("a");
            await using (a)
            {
                var broker = a.Broker!;
                await PositionCopies.PublishAsync(broker, Jobs, 5);
                await PositionCopies.PublishAsync(broker, Feed, 20);
                using var member = broker.JoinGroup(Jobs, "workers", prefetch: 10);
                using (var cts = new CancellationTokenSource(s_deadline))
                {
                    await foreach (var m in member.ReadAllAsync(cts.Token))
                    {
                        Assert.True(member.Ack(m));
                        break;
                    }
                }

                using var kept = Durable(broker, "kept");
                kept.Commit(Feed, 5);
                using var gone = Durable(broker, "gone");
                gone.Commit(Feed, 12);
                await SettleAsync(a);
                Assert.Equal<string>([Gone, Kept, Workers], StateFilesOf(copyOfB).Where(f => f != ProducerCheckpoint.FileName && f != ProducerEpochFile.FileName));
            }

            // a stopped, b detached: the operator removes the subscription and the group on a (documented: remove the
            // file to start them anew), and a starts again.
            await Eventually.TrueAsync(() => !b.Replica!.Connected, "b is detached", s_deadline);
            var welcomes = b.Replica!.Welcomes;
            File.Delete(Path.Combine(stateOfA, Gone));
            File.Delete(Path.Combine(stateOfA, Workers));
            await using var restarted = await ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, optionsOfA!);
            Assert.True(await restarted.WaitForRoleAsync(NodeRole.Primary, s_deadline), "a is primary again");
            await Eventually.TrueAsync(() => b.Replica!.Welcomes > welcomes && restarted.Replicator!.Link is not null, "b attaches to a again", s_deadline);
            await SettleAsync(restarted);

            var ofA = StateFilesOf(stateOfA);
            var ofB = StateFilesOf(copyOfB);
            Assert.True(
                ofB.SequenceEqual(ofA),
                $"after b attached again, b holds [{string.Join(", ", ofB)}], a [{string.Join(", ", ofA)}]: b kept copies of files a no longer has");
            Assert.Equal(2, restarted.Replicator!.Link!.StateFilesRemoved);
            await Eventually.TrueAsync(
                () => Lines(log).Any(l => l.Contains("attached", StringComparison.Ordinal) && l.Contains("copies reported, 2 removed)", StringComparison.Ordinal)),
                "a logs the attach with its 2 removals",
                s_deadline);
            Assert.Equal(5, PositionCopies.PositionIn(copyOfB, Kept, Feed));
        }
    }

    [Fact]
    public async Task A_copy_the_standby_could_not_report_at_the_attach_is_removed_when_the_primary_does_not_have_the_file()
    {
        using var dir = new TempDirectory();
        var log = new List<string>();
        var told = new ConcurrentQueue<string>();
        TcpProxy? toA = null;
        var (a, b) = await InProcessPair.StartAsync(
            dir,
            BrokerOptions.Default,
            o => o with { HeartbeatTimeout = TimeSpan.FromSeconds(10), Log = Keep(log) },
            port => (toA = new TcpProxy(port)).Endpoint);
        await using var proxy = toA!;
        await using (a)
        await using (b)
        {
            var copyOfB = dir.Combine("b");
            var broker = a.Broker!;
            a.Replicator!.StateFileGone = told.Enqueue;
            await PositionCopies.PublishAsync(broker, Feed, 20);
            using var kept = Durable(broker, "kept");
            kept.Commit(Feed, 5);
            await SettleAsync(a);

            // A copy b's STATE_DIGESTS leaves out (larger than a frame; an unreadable one, or one past the frame's room,
            // is left out the same way) of a file a does not have; then the link is cut and b attaches again.
            const string Stale = "subscriptions/stale.pos";
            using (var f = new FileStream(Path.Combine(copyOfB, Stale), FileMode.CreateNew, FileAccess.Write))
            {
                f.SetLength(Wire.MaxFrame + 1L);
            }

            var welcomes = b.Replica!.Welcomes;
            var oldLink = a.Replicator.Link;
            proxy.CutAll();
            await Eventually.TrueAsync(
                () => b.Replica!.Welcomes > welcomes && a.Replicator!.Link is { AcksReceived: > 0 } link && !ReferenceEquals(link, oldLink),
                "b attaches again and acknowledges",
                s_deadline);
            var removed = Eventually.TryWait(() => !File.Exists(Path.Combine(copyOfB, Stale)), s_deadline);
            var ofA = StateFilesOf(dir.Combine("a"));
            var ofB = StateFilesOf(copyOfB);
            Assert.True(
                removed && ofB.SequenceEqual(ofA),
                $"{s_deadline.TotalSeconds} s after b attached again with a copy of {Stale} its STATE_DIGESTS left out, b holds [{string.Join(", ", ofB)}], a [{string.Join(", ", ofA)}] (a told b to remove [{string.Join(", ", told)}]): b kept a copy of a file a does not have");
            Assert.Equal<string>([Stale], told);
            Assert.True(
                Eventually.TryWait(() => Lines(log).Any(l => l.Contains($"state file {Stale} removed: the primary no longer has it", StringComparison.Ordinal)), s_deadline), // logged after the removal
                $"no line says b removed {Stale}: [{string.Join(" | ", Lines(log))}]");

            // b's other copy is still followed.
            kept.Commit(Feed, 7);
            await Eventually.TrueAsync(() => PositionCopies.PositionIn(copyOfB, Kept, Feed) == 7, "b holds kept's position 7", s_deadline);
        }
    }

    [Fact]
    public async Task A_group_state_removed_on_the_primary_while_the_group_is_open_is_written_again_there_and_the_standby_holds_it_again()
    {
        using var dir = new TempDirectory();
        var (a, b) = await InProcessPair.StartAsync(dir, BrokerOptions.Default, o => o with { HeartbeatTimeout = TimeSpan.FromSeconds(10) });
        await using (b)
        await using (a)
        {
            var broker = a.Broker!;
            var file = Path.Combine(dir.Combine("a"), Workers);
            var copy = Path.Combine(dir.Combine("b"), Workers);
            await PositionCopies.PublishAsync(broker, Jobs, 10);
            using var member = broker.JoinGroup(Jobs, "workers", prefetch: 10);
            var jobs = new List<Message>();
            using (var cts = new CancellationTokenSource(s_deadline))
            {
                await foreach (var m in member.ReadAllAsync(cts.Token))
                {
                    jobs.Add(m);
                    if (jobs.Count == 6)
                    {
                        break;
                    }
                }
            }

            Assert.All(jobs.Take(3), m => Assert.True(member.Ack(m)));
            await Eventually.TrueAsync(() => GroupAckStore.ReadFloor(copy) == 3, "b holds workers' ack floor 3", s_deadline);

            // The operator removes the group's state on a while the group is open (a STATE_GONE may reach b meanwhile);
            // a writes it again at its path, with the acks made since, and b gets it whole.
            File.Delete(file);
            Assert.All(jobs.Skip(3), m => Assert.True(member.Ack(m)));
            Assert.True(
                Eventually.TryWait(() => GroupAckStore.ReadFloor(file) == 6 && GroupAckStore.ReadFloor(copy) == 6, s_deadline),
                $"{s_deadline.TotalSeconds} s after workers.state was removed on a while the group was open and 3 more jobs were acked, a's file holds ack floor {Floor(file)} and b's copy {Floor(copy)} (expected 6 in both)");
            await SettleAsync(a);
            Assert.Equal(File.ReadAllBytes(file), File.ReadAllBytes(copy));
        }

        static string Floor(string path) => GroupAckStore.ReadFloor(path)?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none (no file)";
    }

    [Fact]
    public async Task A_position_file_removed_on_the_primary_while_subscribed_is_written_again_there_and_the_standby_holds_it_again()
    {
        using var dir = new TempDirectory();
        var (a, b) = await InProcessPair.StartAsync(dir, BrokerOptions.Default, o => o with { HeartbeatTimeout = TimeSpan.FromSeconds(10) });
        await using (b)
        await using (a)
        {
            var broker = a.Broker!;
            var told = new ConcurrentQueue<string>();
            a.Replicator!.StateFileGone = told.Enqueue;
            var stateOfA = dir.Combine("a");
            var copyOfB = dir.Combine("b");
            await PositionCopies.PublishAsync(broker, Feed, 20);
            using var kept = Durable(broker, "kept");
            kept.Commit(Feed, 5);
            await Eventually.TrueAsync(() => PositionCopies.PositionIn(copyOfB, Kept, Feed) == 5, "b holds kept's position 5", s_deadline);

            // The operator removes kept.pos on a while it is subscribed (a STATE_GONE may reach b meanwhile); a writes it
            // again at its path, with the commit made since, and b gets it.
            File.Delete(Path.Combine(stateOfA, Kept));
            kept.Commit(Feed, 9);
            Assert.True(
                Eventually.TryWait(() => PositionCopies.PositionIn(stateOfA, Kept, Feed) == 9 && PositionCopies.PositionIn(copyOfB, Kept, Feed) == 9, s_deadline),
                $"{s_deadline.TotalSeconds} s after kept.pos was removed on a while subscribed and 9 was committed, a's file holds {Position(stateOfA)} and b's copy {Position(copyOfB)} (expected 9 in both; a told b to remove [{string.Join(", ", told)}])");
            await SettleAsync(a);
            Assert.Equal(File.ReadAllBytes(Path.Combine(stateOfA, Kept)), File.ReadAllBytes(Path.Combine(copyOfB, Kept)));

            kept.Commit(Feed, 12); // followed as before
            await Eventually.TrueAsync(() => PositionCopies.PositionIn(copyOfB, Kept, Feed) == 12, "b holds kept's position 12", s_deadline);
        }

        static string Position(string dataDirectory) => PositionCopies.PositionIn(dataDirectory, Kept, Feed)?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none (no file)";
    }

    private static Subscription Durable(Broker broker, string name) =>
        broker.Subscribe(Feed, SubscriptionOptions.Default with { DurableName = name, Start = StartPosition.Committed });

    /// <summary>A hand-over's request, acknowledged: b has applied everything a sent before it.</summary>
    private static async Task SettleAsync(ReplicatedNode primary)
    {
        var gate = primary.Broker!.Replication!;
        var version = gate.RequestStateFiles();
        await Eventually.TrueAsync(() => gate.StateApplied >= version, $"b acknowledges state version {version}", s_deadline);
    }

    /// <summary>The state files in a data directory (relative, '/'-separated), in order.</summary>
    private static string[] StateFilesOf(string dataDirectory) =>
        [.. StateFiles.EnumerateInfo(dataDirectory).Select(f => f.Relative.Replace('\\', '/')).Order(StringComparer.Ordinal)];

    private static Action<string> Keep(List<string> log) => line =>
    {
        lock (log)
        {
            log.Add(line);
        }
    };

    private static List<string> Lines(List<string> log)
    {
        lock (log)
        {
            return [.. log];
        }
    }
}
