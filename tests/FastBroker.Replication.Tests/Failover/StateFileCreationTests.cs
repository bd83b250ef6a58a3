using System.Buffers.Binary;
using System.Collections.Concurrent;
using FastBroker.Engine;
using FastBroker.Replication;
using FastBroker.Replication.Internal;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A state file the broker is creating (a durable name's first use, a group's first join) is never read by the
/// primary's checks half made: it gets its name only once its header is written, so neither a heartbeat's check (which
/// lists <c>subscriptions/</c>) nor a hand-over's request (which lists every state file) sends the standby a copy of
/// zeros, which it would log as holding no state and keep until the file's next change went whole. The broker's
/// creation is held between writing the file's bytes and its use (<see cref="StateFileFlusher.Creating"/>) while the
/// primary checks its state files. Two in-process nodes, no witness, heartbeats every 20 ms.
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class StateFileCreationTests
{
    private const string Feed = "creation.feed";
    private const string Jobs = "creation.jobs";
    private const string Fresh = "subscriptions/fresh.pos";
    private const string Workers = "topics/" + Jobs + "/groups/workers.state";

    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan s_heartbeat = TimeSpan.FromMilliseconds(20);

    [Fact]
    public async Task A_position_file_being_created_is_not_sent_to_the_standby_before_its_header_is_written()
    {
        using var dir = new TempDirectory();
        var log = new List<string>();
        var (a, b) = await StartAsync(dir, log);
        await using (a)
        await using (b)
        {
            var broker = a.Broker!;
            await PositionCopies.PublishAsync(broker, Feed, 10);
            var subscription = await HoldCreationAsync(
                a,
                dir.Combine("b"),
                Fresh,
                () => broker.Subscribe(Feed, SubscriptionOptions.Default with { DurableName = "fresh", Start = StartPosition.Committed }));
            using (subscription)
            {
                subscription.Commit(Feed, 4);
                await Eventually.TrueAsync(() => PositionCopies.PositionIn(dir.Combine("b"), Fresh, Feed) == 4, "b holds fresh's position 4", s_deadline);
            }

            AssertNoBlankLine(log, Fresh);
        }
    }

    [Fact]
    public async Task A_group_state_file_being_created_is_not_sent_to_the_standby_before_its_header_is_written()
    {
        using var dir = new TempDirectory();
        var log = new List<string>();
        var (a, b) = await StartAsync(dir, log);
        await using (a)
        await using (b)
        {
            var broker = a.Broker!;
            broker.CreateTopic(Jobs, TopicOptions.Default with { Durability = Durability.Fsynced }); // its groups' files are synced: the flusher's
            await PositionCopies.PublishAsync(broker, Jobs, 4);
            var member = await HoldCreationAsync(a, dir.Combine("b"), Workers, () => broker.JoinGroup(Jobs, "workers", prefetch: 4));
            using (member)
            {
                using var cts = new CancellationTokenSource(s_deadline);
                await foreach (var m in member.ReadAllAsync(cts.Token))
                {
                    Assert.True(member.Ack(m));
                    break;
                }

                await Eventually.TrueAsync(() => GroupAckStore.ReadFloor(Path.Combine(dir.Combine("b"), Workers)) == 1, "b holds the group's floor 1", s_deadline);
            }

            AssertNoBlankLine(log, Workers);
        }
    }

    /// <summary>
    /// Runs <paramref name="create"/>, which creates the state file <paramref name="relative"/> on the primary, and holds
    /// the creation once the file's bytes are written while the primary's heartbeats check its state files three times and
    /// a hand-over's request has every state file read and acknowledged; then asserts the primary did not send the file
    /// meanwhile, lets the creation finish and returns what it made.
    /// </summary>
    private static async Task<T> HoldCreationAsync<T>(ReplicatedNode a, string copyOfB, string relative, Func<T> create)
    {
        var gate = a.Broker!.Replication!;
        var link = a.Replicator!.Link!;
        var sends = new ConcurrentQueue<string>();
        a.Replicator.StateFileSent = sends.Enqueue;
        var full = Path.GetFullPath(Path.Combine(a.Broker.Options.DataDirectory, relative));
        using var held = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        a.Broker.StateFlusher.Creating = path =>
        {
            if (Path.GetFullPath(path) == full)
            {
                held.Set();
                release.Wait(s_deadline);
            }
        };
        var creation = Task.Run(create);
        try
        {
            await Eventually.TrueAsync(() => held.IsSet || creation.IsCompleted, $"the primary holds the creation of {relative}", s_deadline);
            Assert.True(held.IsSet, $"the creation of {relative} finished without reaching the hook");
            var beats = link.HeartbeatsSent;
            await Eventually.TrueAsync(() => link.HeartbeatsSent >= beats + 3, "three heartbeats' checks while the creation is held", s_deadline);
            var version = gate.RequestStateFiles();
            await Eventually.TrueAsync(() => gate.StateApplied >= version, $"b acknowledges state version {version} while the creation is held", s_deadline);
            var copy = StateFiles.ReadShared(Path.Combine(copyOfB, relative));
            Assert.False(
                sends.Contains(relative),
                $"the primary sent {relative} whole while the broker was creating it: b's copy is {Describe(copy)}");
        }
        finally
        {
            release.Set();
        }

        var made = await creation.WaitAsync(s_deadline);
        a.Broker.StateFlusher.Creating = null;
        return made;
    }

    private static string Describe(byte[]? copy) => copy is null
        ? "missing"
        : copy.Length < 8
            ? $"{copy.Length} bytes"
            : $"{copy.Length} bytes, {copy.Count(x => x != 0)} of them not zero, magic 0x{BinaryPrimitives.ReadInt64LittleEndian(copy):X16}";

    private static void AssertNoBlankLine(List<string> log, string relative)
    {
        lock (log)
        {
            var lines = log.Where(l => l.Contains(relative, StringComparison.Ordinal) && l.Contains("no state", StringComparison.Ordinal)).ToList();
            Assert.True(lines.Count == 0, $"a node logged {relative} as holding no state: {string.Join(" | ", lines)}");
        }
    }

    private static async Task<(ReplicatedNode Primary, ReplicatedNode Standby)> StartAsync(TempDirectory dir, List<string> log)
    {
        var (a, b) = await InProcessPair.StartAsync(
            dir,
            BrokerOptions.Default,
            o => o with
            {
                HeartbeatInterval = s_heartbeat,
                HeartbeatTimeout = TimeSpan.FromSeconds(5),
                Log = line =>
                {
                    lock (log)
                    {
                        log.Add(line);
                    }
                },
            });
        try
        {
            var gate = a.Broker!.Replication!;
            var version = gate.RequestStateFiles();
            await Eventually.TrueAsync(() => gate.StateApplied >= version && a.Replicator!.Link is not null, $"b attaches and acknowledges state version {version}", s_deadline);
            return (a, b);
        }
        catch
        {
            await b.DisposeAsync();
            await a.DisposeAsync();
            throw;
        }
    }
}
