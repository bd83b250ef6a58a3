using System.Collections.Concurrent;
using FastBroker.Engine;
using FastBroker.Replication;
using FastBroker.Replication.Internal;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A standby that attaches again says what it holds of the state files (STATE_DIGESTS: path, length, CRC32C and a
/// second check per copy, right after the WELCOME), and the primary sends whole only the files whose copy differs from
/// its own or is missing: none when the copies are identical, and a copy damaged on disk while the link was down is
/// replaced by the primary's file. Counted on the primary (<see cref="PrimaryReplicator.StateFileSent"/>, the link's
/// <c>stateFilesSent</c>). Two in-process nodes, no witness, a 30 s heartbeat (nothing but the test's requests and the
/// attach sends a file whole), the link through a <see cref="TcpProxy"/>.
/// </summary>
public sealed class StateDigestAttachTests
{
    private const string Jobs = "digest.jobs";
    private const string Feed = "digest.feed";
    private const string Keeper = "subscriptions/keeper.pos";
    private const string Idle = "subscriptions/idle.pos";
    private const string Workers = "topics/" + Jobs + "/groups/workers.state";
    private const ulong Id = 0x0E90_C400_0000_0091;

    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_standby_that_attaches_again_with_identical_copies_is_sent_no_state_file()
    {
        await using var pair = await Pair.StartAsync();
        var (a, sends) = (pair.A, pair.Sends);
        await pair.SettleAsync();
        Assert.Equal(5, pair.StateFilesOfA().Length); // keeper.pos, idle.pos, the group's state, producers.state and producers.epochs

        var start = sends.Count;
        await pair.ReattachAsync(whileDown: null);
        await pair.SettleAsync();
        Assert.True(
            sends.Count == start,
            $"b attached again with copies identical to a's files: a sent [{string.Join(", ", sends.Skip(start))}] whole");
        Assert.Equal(0, a.Replicator!.Link!.StateFilesSent);

        // Waited for, not read once: a's sender thread writes the attach line after the attach's POSITIONS frame
        // (StandbyLink.SendLoop). It now does so before it starts the ack reader, so the STATE_ACK that ends SettleAsync
        // (read by that reader) comes after it; when it came first (a test's request older than the attach's snapshot,
        // which then covers it) the line could still be missing here.
        static bool IsAttachLine(string l) =>
            l.Contains("attached", StringComparison.Ordinal) && l.Contains("0 state files sent whole, 5 copies reported", StringComparison.Ordinal);
        var logged = Eventually.TryWait(() => pair.Lines().Exists(IsAttachLine), s_deadline);
        Assert.True(
            logged,
            $"no attach line says 0 state files sent whole, 5 copies reported within {s_deadline.TotalSeconds} s; the log:{Environment.NewLine}{string.Join(Environment.NewLine, pair.Lines())}");
    }

    [Fact]
    public async Task A_copy_changed_missing_or_damaged_while_the_link_was_down_is_sent_whole_and_ends_identical()
    {
        await using var pair = await Pair.StartAsync();
        var (a, sends) = (pair.A, pair.Sends);
        await pair.SettleAsync();
        var copyOfB = pair.Dir.Combine("b");

        var start = sends.Count;
        await pair.ReattachAsync(whileDown: () =>
        {
            pair.Keeper.Commit(Feed, 12); // a's keeper.pos changes while b cannot have it
            File.Delete(Path.Combine(copyOfB, ProducerCheckpoint.FileName)); // b's copy missing
            LoggedPair.Overwrite(Path.Combine(copyOfB, Idle), "NOTAPOSN"u8); // b's copies damaged in place, lengths kept
            var group = Path.Combine(copyOfB, Workers);
            using var f = new FileStream(group, FileMode.Open, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
            f.Position = f.Length - 8;
            f.Write(BitConverter.GetBytes(0x5EED_5EED_5EED_5EEDL));
            f.Flush(flushToDisk: true);
        });
        await pair.SettleAsync();
        var sent = sends.Skip(start).Order(StringComparer.Ordinal).ToArray();
        string[] expected = [Keeper, Idle, Workers, ProducerCheckpoint.FileName];
        Assert.True(
            sent.SequenceEqual(expected.Order(StringComparer.Ordinal)),
            $"a sent [{string.Join(", ", sent)}] whole; b's copies of [{string.Join(", ", expected)}] differed or were missing");
        Assert.Equal(12, PositionCopies.PositionIn(copyOfB, Keeper, Feed));
        Assert.Equal(expected.Length, a.Replicator!.Link!.StateFilesSent);
    }

    [Fact]
    public async Task A_standby_speaking_the_link_protocol_before_STATE_DIGESTS_is_refused_and_one_speaking_it_is_welcomed()
    {
        Assert.Equal(10, Wire.Version);
        using var dir = new TempDirectory();
        var node = await ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, new ReplicationOptions
        {
            NodeId = "a",
            DataDirectory = dir.Combine("a"),
            Port = FreePort.Next(),
            Peer = Cli.Address(FreePort.Next()), // nothing listens there
            InitialRole = NodeRole.Primary,
        });
        await using (node)
        {
            Assert.True(await node.WaitForRoleAsync(NodeRole.Primary, s_deadline), "a becomes primary");
            foreach (var version in new ushort[] { 7, 8, 9, 11 })
            {
                using var old = Wire.Connect(node.ReplicationEndPoint, TimeSpan.FromSeconds(10));
                old.ReceiveTimeout = 30_000;
                var hello = new FrameBuffer(256);
                hello.Begin(FrameKind.Hello).U32(Wire.Magic).U16(version).I64(0).Str("old").U32(0).Str("").End();
                hello.SendTo(old);
                Assert.False(new FrameInput(old, 4096).Read(out var kind, out _), $"a answers a HELLO of version {version} by closing the connection (got {kind})");
            }

            using var current = Wire.Connect(node.ReplicationEndPoint, TimeSpan.FromSeconds(10));
            current.ReceiveTimeout = 30_000;
            var f = new FrameBuffer(256);
            new Hello("current", 0, [], "").Write(f);
            f.SendTo(current);
            Assert.True(new FrameInput(current, 4096).Read(out var welcome, out _), "a answers a HELLO of the current version");
            Assert.Equal(FrameKind.Welcome, welcome);
            Assert.Equal(NodeRole.Primary, node.Role);
        }
    }

    /// <summary>The pair, its state (a group with a floor, two durable subscriptions, a producer) and what a sent whole.</summary>
    private sealed class Pair : IAsyncDisposable
    {
        private readonly List<IDisposable> _owned = [];

        private readonly List<string> _log;

        private readonly ManualClock _logClock;

        private Pair(TempDirectory dir, List<string> log, ManualClock logClock, TcpProxy proxy, ReplicatedNode a, ReplicatedNode b)
        {
            _log = log;
            _logClock = logClock;
            Dir = dir;
            Proxy = proxy;
            A = a;
            B = b;
            a.Replicator!.StateFileSent = Sends.Enqueue;
        }

        public TempDirectory Dir { get; }

        public TcpProxy Proxy { get; }

        public ReplicatedNode A { get; }

        public ReplicatedNode B { get; }

        public ConcurrentQueue<string> Sends { get; } = new();

        public Subscription Keeper { get; private set; } = null!;

        public static async Task<Pair> StartAsync()
        {
            var dir = new TempDirectory();
            var log = new List<string>();
            var logClock = new ManualClock();
            TcpProxy? toA = null;
            var (a, b) = await InProcessPair.StartAsync(
                dir,
                BrokerOptions.Default,
                o => o with
                {
                    // b's own interval paces only its standby loop, which connects again every half interval after
                    // the cut (15 s of each reattach with a's 30 s); what a sends follows a's interval, and b's
                    // heartbeat timeout stays a's 60 s, so a's 30 s heartbeats keep the link.
                    HeartbeatInterval = o.NodeId == "b" ? TimeSpan.FromSeconds(1) : LoggedPair.Interval,
                    HeartbeatTimeout = LoggedPair.Interval * 2,
                    LogClock = logClock,
                    Log = line =>
                    {
                        lock (log)
                        {
                            log.Add(line);
                        }
                    },
                },
                port => (toA = new TcpProxy(port)).Endpoint);
            var pair = new Pair(dir, log, logClock, toA!, a, b);
            pair._owned.Add(dir);
            var broker = a.Broker!;
            await PositionCopies.PublishAsync(broker, Jobs, 5);
            await PositionCopies.PublishAsync(broker, Feed, 20);
            broker.InitProducer(Id);
            var member = broker.JoinGroup(Jobs, "workers", prefetch: 10);
            pair._owned.Add(member);
            var delivered = new List<Message>();
            using (var cts = new CancellationTokenSource(s_deadline))
            {
                await foreach (var m in member.ReadAllAsync(cts.Token))
                {
                    delivered.Add(m);
                    if (delivered.Count == 2)
                    {
                        break;
                    }
                }
            }

            Assert.True(member.Ack(delivered[0]));
            pair.Keeper = broker.Subscribe(Feed, SubscriptionOptions.Default with { DurableName = "keeper", Start = StartPosition.Committed });
            pair._owned.Add(pair.Keeper);
            pair.Keeper.Commit(Feed, 5);
            var idle = broker.Subscribe(Feed, SubscriptionOptions.Default with { DurableName = "idle", Start = StartPosition.Committed });
            pair._owned.Add(idle);
            idle.Commit(Feed, 3);
            return pair;
        }

        /// <summary>Both nodes' log lines so far.</summary>
        public List<string> Lines()
        {
            lock (_log)
            {
                return [.. _log];
            }
        }

        /// <summary>The state files of a (relative, '/'-separated), in order.</summary>
        public string[] StateFilesOfA() =>
            [.. StateFiles.EnumerateInfo(Dir.Combine("a")).Select(f => f.Relative.Replace('\\', '/')).Order(StringComparer.Ordinal)];

        /// <summary>A hand-over's request (b gets what it lacks and acknowledges), then b's copies are a's files byte for byte.</summary>
        public async Task SettleAsync()
        {
            var gate = A.Broker!.Replication!;
            var version = gate.RequestStateFiles();
            await Eventually.TrueAsync(() => gate.StateApplied >= version, $"b acknowledges state version {version}", s_deadline);
            if (!Eventually.TryWait(() => Differences().Count == 0, s_deadline))
            {
                Assert.Fail($"b's copies are not a's files: they differ in [{string.Join(", ", Differences())}]");
            }
        }

        /// <summary>Cuts the link, runs <paramref name="whileDown"/> once b has let go of its copies, and lets b attach again.</summary>
        public async Task ReattachAsync(Action? whileDown)
        {
            var oldLink = A.Replicator!.Link;
            var welcomes = B.Replica!.Welcomes;
            Proxy.Cut();
            await Eventually.TrueAsync(() => !B.Replica!.Connected && A.Replicator!.Link is null, "the link is down on both sides", s_deadline);
            whileDown?.Invoke();

            // The link that ended answered no heartbeat (a's come every 30 s): a rate-limits the next link's lines for
            // LogRateLimit's interval (10 s), so its attach line would not be logged. The log clock is moved past it,
            // as the 15 s b waited before it connected again did with its interval as long as a's.
            _logClock.Advance(LogRateLimit.DefaultInterval * 2);
            Proxy.Restore();
            await Eventually.TrueAsync(
                () => B.Replica!.Welcomes > welcomes && A.Replicator!.Link is { } link && !ReferenceEquals(link, oldLink),
                "b attaches again",
                s_deadline);
        }

        public async ValueTask DisposeAsync()
        {
            for (var i = _owned.Count - 1; i >= 1; i--)
            {
                _owned[i].Dispose();
            }

            await B.DisposeAsync();
            await A.DisposeAsync();
            await Proxy.DisposeAsync();
            _owned[0].Dispose();
        }

        private List<string> Differences()
        {
            var differ = new List<string>();
            foreach (var relative in StateFilesOfA())
            {
                var copy = Path.Combine(Dir.Combine("b"), relative);
                if (!File.Exists(copy) || !File.ReadAllBytes(copy).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(Dir.Combine("a"), relative))))
                {
                    differ.Add(relative);
                }
            }

            return differ;
        }
    }
}
