using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using FastBroker.Replication;
using FastBroker.Replication.Internal;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A node that defers to its peer (the peer holds more of the log) must go on deferring while the peer takes over.
/// Becoming primary, the peer closes its standby copy before it opens its broker, and its STATUS meanwhile carries no
/// heads. A loaded CI run (<see cref="DoublePowerLossTests"/>): the deferring node read "no heads" as "not ahead" and
/// asked the witness for the lease; the peer's promotion took 1.8 s, longer than its 1 s lease, so the witness granted
/// it to the node behind, the peer fenced itself at the end of its promotion, followed, and was cut: 8 confirmed
/// records lost.
/// </summary>
public sealed class PeerTakingOverTests
{
    private const string Topic = "takeover.orders";
    private const string Deferring = "deferring to it";
    private static readonly TimeSpan s_peerWait = TimeSpan.FromSeconds(3);

    /// <summary>
    /// The peer (a fake answering the replication port) says it is deciding, ahead on a topic, until the node has
    /// become its standby (its first HELLO); then, for good, that it is deciding with no heads (as while it opens its
    /// journals as primary). The node must not take the lease
    /// before <c>PeerWait</c> has passed (the bound that keeps a peer that never takes over from leaving the pair
    /// without a primary), and then it says why it does.
    /// </summary>
    [Fact]
    public async Task A_node_deferring_to_its_peer_does_not_take_the_lease_while_the_peer_answers_without_heads()
    {
        using var dir = new TempDirectory();
        await using var witness = await WitnessFixture.StartAsync();
        using var peer = new TakingOverPeer(aheadOn: Topic, head: 10);
        var lines = new NodeLines();
        await using var node = await StartNodeAsync(dir, witness, peer, lines);

        await Eventually.TrueAsync(() => lines.Queue.Any(l => l.Contains(Deferring, StringComparison.Ordinal)), "a defers to its peer, which holds more of the log");
        await Eventually.TrueAsync(() => peer.ProbesWithoutHeads >= 3, "a probes its peer while the peer reports no heads");
        await Eventually.TrueAsync(() => node.Role == NodeRole.Primary, "a takes the lease once its peer has not taken over within the bound");

        AssertDeferredForPeerWait(peer, lines);
    }

    /// <summary>
    /// The peer ahead dies while the node defers to it (the fake stops listening after the node's first HELLO: every
    /// probe from then on finds nothing). It may still hold confirmed records the node lacks and come back with them,
    /// so the node must go on deferring for <c>PeerWait</c> from when it began, as with a peer that answers without
    /// heads. Before, the first probe without an answer ended the deferral at once.
    /// </summary>
    [Fact]
    public async Task A_node_deferring_to_its_peer_does_not_take_the_lease_as_soon_as_the_peer_stops_answering()
    {
        using var dir = new TempDirectory();
        await using var witness = await WitnessFixture.StartAsync();
        using var peer = new TakingOverPeer(aheadOn: Topic, head: 10, vanishAfterHello: true);
        var lines = new NodeLines();
        await using var node = await StartNodeAsync(dir, witness, peer, lines);

        await Eventually.TrueAsync(() => lines.Queue.Any(l => l.Contains(Deferring, StringComparison.Ordinal)), "a defers to its peer, which holds more of the log");
        await Eventually.TrueAsync(() => peer.Vanished, "the peer stops listening");
        await Eventually.TrueAsync(() => node.Role == NodeRole.Primary, "a takes the lease once its peer has not taken over within the bound");

        AssertDeferredForPeerWait(peer, lines);
    }

    private static Task<ReplicatedNode> StartNodeAsync(TempDirectory dir, WitnessFixture witness, TakingOverPeer peer, NodeLines lines) =>
        ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, new ReplicationOptions
        {
            NodeId = "a",
            DataDirectory = dir.Combine("a"),
            Port = FreePort.Next(),
            Peer = $"127.0.0.1:{peer.Port}",
            Witness = witness.Endpoint,
            InitialRole = NodeRole.Standby,
            PeerWait = s_peerWait,
            Log = lines.Add,
        });

    /// <summary>
    /// The node, now primary, said why it took the lease, and took it no sooner than PeerWait after it began to defer.
    /// Measured on the monotonic clock the node counts its wait on (<see cref="Stopwatch"/>), between two points whose
    /// order is certain: from before the fake peer's first answer with heads (the node cannot defer before it has one,
    /// and takes its own start of the wait after reading it) to the node's log line saying it is primary (written
    /// after it found PeerWait passed and got the lease). Its event stamps are not used: the node writes its "deferring"
    /// line after it began counting and after it saved node.state (an fsync), so their gap can come out a few ms short
    /// of a wait that was right. A node that does not wait is primary a probe and a lease after the first answer (some
    /// ms), far below the bound.
    /// </summary>
    private static void AssertDeferredForPeerWait(TakingOverPeer peer, NodeLines lines)
    {
        var log = string.Join('\n', lines.Queue);
        Assert.True(lines.Queue.Any(l => l.Contains("has not taken over in", StringComparison.Ordinal)), $"a took the lease while it deferred:\n{log}");
        var from = peer.FirstHeadsAnsweredAt;
        var to = lines.PrimaryAt;
        Assert.True(from != 0 && to != 0, $"no answer with heads ({from}) or no line saying a is primary ({to}):\n{log}");
        var waited = Stopwatch.GetElapsedTime(from, to);
        Assert.True(waited >= s_peerWait, $"a was primary {waited.TotalMilliseconds:0} ms after its peer's first answer with heads, less than PeerWait {s_peerWait.TotalMilliseconds:0}:\n{log}");
    }

    /// <summary>The node's log lines, and when (a <see cref="Stopwatch"/> timestamp) it first logged that it is primary.</summary>
    private sealed class NodeLines
    {
        private long _primaryAt;

        public ConcurrentQueue<string> Queue { get; } = new();

        public long PrimaryAt => Interlocked.Read(ref _primaryAt);

        public void Add(string line)
        {
            if (line.Contains("Primary (epoch", StringComparison.Ordinal))
            {
                Interlocked.CompareExchange(ref _primaryAt, Stopwatch.GetTimestamp(), 0);
            }

            Queue.Enqueue(line);
        }
    }

    /// <summary>
    /// A fake peer on the replication port: answers PROBE with a STATUS of a node that is deciding (not primary, epoch 0),
    /// with heads ahead on one topic until the first HELLO and without heads after it; refuses a HELLO (not primary).
    /// </summary>
    private sealed class TakingOverPeer : LoopbackFake
    {
        private const byte StatusHeadsKnown = 1; // ReplicatedNode's STATUS flag
        private readonly string _topic;
        private readonly long _head;
        private readonly bool _vanishAfterHello;
        private volatile bool _helloSeen;
        private volatile bool _vanished;
        private int _probesWithoutHeads;
        private long _firstHeadsAnsweredAt;

        /// <param name="aheadOn">The topic it claims to hold more of.</param>
        /// <param name="head">Its head on that topic.</param>
        /// <param name="vanishAfterHello">Stop listening (as a dead node) once the first HELLO is refused.</param>
        public TakingOverPeer(string aheadOn, long head, bool vanishAfterHello = false)
            : base("fake-peer")
        {
            _topic = aheadOn;
            _head = head;
            _vanishAfterHello = vanishAfterHello;
            Start();
        }

        public int ProbesWithoutHeads => Volatile.Read(ref _probesWithoutHeads);

        public bool Vanished => _vanished;

        /// <summary>A <see cref="Stopwatch"/> timestamp taken before the first answer with heads was sent; 0 before.</summary>
        public long FirstHeadsAnsweredAt => Interlocked.Read(ref _firstHeadsAnsweredAt);

        protected override void Stopped() => _vanished = true; // from now on the node's connects are refused

        protected override bool Serve(Socket socket)
        {
            var (kind, _) = ReceiveFrame(socket);
            var f = new FrameBuffer(256);
            if (kind == FrameKind.Probe)
            {
                var withHeads = !_helloSeen;
                if (!withHeads)
                {
                    Interlocked.Increment(ref _probesWithoutHeads);
                }
                else
                {
                    Interlocked.CompareExchange(ref _firstHeadsAnsweredAt, Stopwatch.GetTimestamp(), 0);
                }

                f.Begin(FrameKind.Status).U8((byte)NodeRole.Starting).I64(0).Str("b").U8(withHeads ? StatusHeadsKnown : (byte)0).U32(withHeads ? 1u : 0u);
                if (withHeads)
                {
                    f.Str(_topic).I64(_head);
                }
            }
            else
            {
                _helloSeen = true;
                f.Begin(FrameKind.Refuse).I64(0).U8((byte)NodeRole.Starting).Str("node 'b' is Starting, not primary");
            }

            f.End();
            f.SendTo(socket);
            return !(_vanishAfterHello && _helloSeen);
        }
    }
}
