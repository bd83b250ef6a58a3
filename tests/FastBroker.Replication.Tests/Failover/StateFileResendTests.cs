using System.Collections.Concurrent;
using System.Text.Json;
using FastBroker.Engine;
using FastBroker.Replication.Internal;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// The primary sends a state file whole only when the standby's copy needs it: to a standby that attaches, those its copies lack (each
/// file at most once per link), when the file changed in a way no update shipped to the standby has already brought
/// its copy to, and when the standby asks for it (a damaged copy). A position file whose only changes since the
/// standby had it whole are commits shipped as updates is not sent again: not by the group-state sends, not by a
/// hand-over's request, nor at an attach when the standby's copy is the primary's file (its STATE_DIGESTS). Counted on the primary (<see cref="PrimaryReplicator.StateFileSent"/>, the link's
/// <c>stateFilesSent</c>). Two in-process nodes, no witness, a 30 s heartbeat, the link through a
/// <see cref="TcpProxy"/> (cut to make the standby attach again).
/// </summary>
public sealed class StateFileResendTests
{
    private const string Jobs = "resend.jobs";
    private const string Feed = "resend.feed";
    private const string Keeper = "subscriptions/keeper.pos";
    private const string Workers = "topics/" + Jobs + "/groups/workers.state";
    private const ulong Id = 0x0E90_C400_0000_0081;

    private static readonly TimeSpan s_interval = TimeSpan.FromSeconds(30);

    // b's own interval paces only its standby loop, which connects again every half interval after the cut: 15 s of
    // the test's run with a's 30 s. What a sends (its heartbeats, its state-file reads) follows a's interval; b's
    // heartbeat timeout stays a's 60 s, so a's 30 s heartbeats keep the link.
    private static readonly TimeSpan s_standbyInterval = TimeSpan.FromSeconds(1);

    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_state_file_is_sent_whole_only_when_the_standby_lacks_its_content()
    {
        using var dir = new TempDirectory();
        TcpProxy? toA = null;
        var (a, b) = await InProcessPair.StartAsync(
            dir,
            BrokerOptions.Default,
            o => o with { HeartbeatInterval = o.NodeId == "b" ? s_standbyInterval : s_interval, HeartbeatTimeout = s_interval * 2 },
            port => (toA = new TcpProxy(port)).Endpoint);
        await using var proxy = toA!;
        await using (a)
        await using (b)
        {
            var broker = a.Broker!;
            var gate = broker.Replication!;
            var copyOfB = dir.Combine("b");
            var sends = new ConcurrentQueue<string>();
            a.Replicator!.StateFileSent = sends.Enqueue;

            await PositionCopies.PublishAsync(broker, Jobs, 5);
            await PositionCopies.PublishAsync(broker, Feed, 20);
            broker.InitProducer(Id);
            using var member = broker.JoinGroup(Jobs, "workers", prefetch: 10);
            var delivered = await ReadAsync(member, 5);
            using var keeper = broker.Subscribe(Feed, SubscriptionOptions.Default with { DurableName = "keeper", Start = StartPosition.Committed });
            keeper.Commit(Feed, 5);
            Assert.True(member.Ack(delivered[0]));
            await Eventually.TrueAsync(
                () => PositionCopies.PositionIn(copyOfB, Keeper, Feed) == 5 && Floor(copyOfB) == 1 && sends.Contains(Keeper) && File.Exists(Path.Combine(copyOfB, ProducerCheckpoint.FileName)),
                "b holds keeper's position 5, the group's floor 1 and producers.state, and keeper.pos went whole",
                s_deadline);

            // A group-state send lists subscriptions/ and can read keeper.pos while the subscribe creates it or commit 5
            // stores into it (the entry's name and count before its position): b's copy is then not a's file, and the
            // next read of keeper.pos sends it whole again, as it should. A hand-over's request reads every file while
            // nothing writes them: from its acknowledgement on, b's copies are a's files, which the phases below need.
            var settled = gate.RequestStateFiles();
            await Eventually.TrueAsync(() => gate.StateApplied >= settled, $"b acknowledges state version {settled}", s_deadline);

            // Commits shipped as updates, then the group's ack, whose send checks every state file: only the group's
            // state changed in a way b does not have yet.
            var phase = Phase.Begin(sends);
            keeper.Commit(Feed, 7);
            await Eventually.TrueAsync(() => PositionCopies.PositionIn(copyOfB, Keeper, Feed) == 7, "b holds keeper's position 7", s_deadline);
            keeper.Commit(Feed, 9);
            await Eventually.TrueAsync(() => PositionCopies.PositionIn(copyOfB, Keeper, Feed) == 9, "b holds keeper's position 9", s_deadline);
            Assert.True(member.Ack(delivered[1]));
            await Eventually.TrueAsync(() => Floor(copyOfB) == 2, "b holds the group's floor 2", s_deadline);
            phase.AssertSentOnly("commits 7 and 9 (updates), then an ack", Workers);

            // A hand-over's request after a commit: keeper.pos changed only by that commit, shipped with it.
            phase = Phase.Begin(sends);
            keeper.Commit(Feed, 11);
            var version = gate.RequestStateFiles();
            await Eventually.TrueAsync(() => gate.StateApplied >= version, $"b acknowledges state version {version}", s_deadline);
            Assert.Equal(11, PositionCopies.PositionIn(copyOfB, Keeper, Feed));
            phase.AssertSentOnly("a commit of 11, then a hand-over's request");

            // The link cut: b attaches again, its copies identical to a's files (STATE_DIGESTS says so), and gets none.
            phase = Phase.Begin(sends);
            var attached = phase.Start;
            var oldLink = a.Replicator!.Link;
            var welcomes = b.Replica!.Welcomes;
            proxy.CutAll();
            await Eventually.TrueAsync(
                () => b.Replica!.Welcomes > welcomes && a.Replicator!.Link is { AcksReceived: > 0 } link && !ReferenceEquals(link, oldLink),
                "b attaches again and acknowledges",
                s_deadline);
            var files = StateFilesIn(dir.Combine("a"));
            Assert.Equal(4, files.Length); // keeper.pos, the group's state, producers.state and producers.epochs
            foreach (var file in files)
            {
                Assert.Equal(File.ReadAllBytes(Path.Combine(dir.Combine("a"), file)), File.ReadAllBytes(Path.Combine(copyOfB, file)));
            }

            phase.AssertSentOnly("the link cut and b attached again with identical copies");

            // A damaged copy (b opens it for the next commit: the attach replaced the copy it had open): b asks for keeper.pos,
            // which goes whole once, though the link sent these bytes before.
            phase = Phase.Begin(sends);
            Damage(Path.Combine(copyOfB, Keeper));
            keeper.Commit(Feed, 13);
            await Eventually.TrueAsync(() => sends.Count > phase.Start && PositionCopies.PositionIn(copyOfB, Keeper, Feed) == 13, "b asks for keeper.pos and gets it", s_deadline);
            version = gate.RequestStateFiles();
            await Eventually.TrueAsync(() => gate.StateApplied >= version, $"b acknowledges state version {version}", s_deadline);
            Assert.Equal(13, PositionCopies.PositionIn(copyOfB, Keeper, Feed));
            phase.AssertSentOnly("b's copy damaged, a commit of 13, a hand-over's request", Keeper);

            // Then a commit and an ack as before, and a hand-over's request: only the group's state goes.
            phase = Phase.Begin(sends);
            keeper.Commit(Feed, 15);
            await Eventually.TrueAsync(() => PositionCopies.PositionIn(copyOfB, Keeper, Feed) == 15, "b holds keeper's position 15", s_deadline);
            Assert.True(member.Ack(delivered[2]));
            await Eventually.TrueAsync(() => Floor(copyOfB) == 3, "b holds the group's floor 3", s_deadline);
            version = gate.RequestStateFiles();
            await Eventually.TrueAsync(() => gate.StateApplied >= version, $"b acknowledges state version {version}", s_deadline);
            phase.AssertSentOnly("on the new link: a commit of 15, an ack, a hand-over's request", Workers);
            Assert.Equal(sends.Count - attached, a.Replicator!.Link!.StateFilesSent);
            using var status = JsonDocument.Parse(a.GetStatusJson());
            Assert.Equal(sends.Count - attached, status.RootElement.GetProperty("standby").GetProperty("stateFilesSent").GetInt64());
        }
    }

    /// <summary>
    /// The state files in <paramref name="dataDirectory"/> (<see cref="StateFiles.IsStatePath"/>: the producers' two
    /// files, subscriptions' positions, groups' state), relative and '/'-separated, in order.
    /// </summary>
    private static string[] StateFilesIn(string dataDirectory) =>
        [.. Directory.EnumerateFiles(dataDirectory, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(dataDirectory, f).Replace('\\', '/'))
            .Where(StateFiles.IsStatePath)
            .Order(StringComparer.Ordinal)];

    private static long? Floor(string copyOfB) => GroupAckStore.ReadFloor(Path.Combine(copyOfB, Workers));

    /// <summary>Overwrites the file's magic ("NOTAPOSN").</summary>
    private static void Damage(string path)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
        f.Write("NOTAPOSN"u8);
        f.Flush(flushToDisk: true);
    }

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

    /// <summary>The whole-file sends from a point on.</summary>
    private sealed class Phase(ConcurrentQueue<string> sends, int start)
    {
        public int Start { get; } = start;

        public static Phase Begin(ConcurrentQueue<string> sends) => new(sends, sends.Count);

        /// <summary>Asserts that each of <paramref name="expected"/> (distinct paths) went whole exactly once since the start, and nothing else.</summary>
        public void AssertSentOnly(string what, params string[] expected)
        {
            var sent = sends.Skip(Start).Order(StringComparer.Ordinal).ToArray();
            Assert.True(
                sent.SequenceEqual(expected.Order(StringComparer.Ordinal)),
                $"{what}: the primary sent [{string.Join(", ", sent)}] whole; the standby lacked only [{string.Join(", ", expected)}]");
        }
    }
}
