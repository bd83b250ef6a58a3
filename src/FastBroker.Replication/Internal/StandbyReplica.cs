using System.Diagnostics;
using System.Net.Sockets;
using FastBroker.Engine;
using FastBroker.Journal;
using FastBroker.Threading;

namespace FastBroker.Replication.Internal;

/// <summary>
/// The standby's copy: connects to the primary's replication port, says which epoch it followed and what each topic
/// holds, applies the primary's cuts (records the new primary never had), then writes every streamed run with its
/// own journal writer — byte-identical records at the same offsets — and acknowledges each topic's received
/// position after each burst and its durable (flushed) position after each group commit. One thread receives and
/// writes (the single writer of the standby's journals); one sends durable acks.
/// </summary>
internal sealed partial class StandbyReplica : IDisposable
{
    /// <summary>The highest topic id a TOPIC frame may carry (the primary numbers a link's topics from 0).</summary>
    private const int MaxTopicId = 1 << 20;

    /// <summary>Under the data directory: the segments a damaged copy's cut destroys, kept for an operator (<see cref="KeepDamagedAside"/>).</summary>
    internal const string DamagedDirectory = "damaged";

    /// <summary>How often the standby flushes what no standby-durable confirmation waits for.</summary>
    internal static readonly TimeSpan BackgroundFlush = TimeSpan.FromMilliseconds(100);

    private readonly ReplicationOptions _options;
    private readonly NodeState _state;
    private readonly string _topicsRoot;
    private readonly Dictionary<string, ReplicaTopic> _byName = new(StringComparer.Ordinal);
    private readonly List<ReplicaTopic> _byId = [];
    private readonly object _sendLock = new();
    private readonly AsyncSignal _durableWake = new();
    private readonly List<ReplicaTopic> _touched = [];
    private readonly FrameBuffer _ackFrame = new(4096);
    private readonly FrameBuffer _durableFrame = new(4096);
    private readonly FrameBuffer _heartbeatAck = new(16);
    private readonly FrameBuffer _keepAlive = new(16);
    private Socket? _socket;
    private volatile bool _stopping;
    private Thread? _durableThread;
    private long _lastHeardTicks = Stopwatch.GetTimestamp();
    private volatile bool _headsReported;
    private bool _closed; // under _byName: CloseJournals has run
    private long _recordsReceived;
    private readonly bool _verifySealedSegments;
    private long _bytesReceived;
    private string[] _truncations = [];

    public StandbyReplica(ReplicationOptions options, NodeState state, bool verifySealedSegments)
    {
        _options = options;
        _stateFlusher.Log = options.Log;
        _state = state;
        _verifySealedSegments = verifySealedSegments;
        _topicsRoot = Path.Combine(options.DataDirectory, "topics");
        TopicRegistry.CreateRoot(_topicsRoot); // typed, as the broker's open: a file or a dangling link in its place
        try
        {
            OpenExisting();
        }
        catch
        {
            CloseJournals(); // the journals opened before the failure would hold their directory locks for good
            throw;
        }
    }

    /// <summary>How many times a primary has welcomed this replica (it followed one).</summary>
    public int Welcomes { get; private set; }

    /// <summary>The primary this replica follows (its node id, once welcomed).</summary>
    public string? PrimaryId { get; private set; }

    public bool Connected => Volatile.Read(ref _socket) is { Connected: true } && PrimaryId is not null;

    /// <summary>Time since the primary last sent anything (a frame, or bytes of one) on the current link.</summary>
    public TimeSpan SinceLastHeard => Stopwatch.GetElapsedTime(Volatile.Read(ref _lastHeardTicks));

    /// <summary>
    /// The records this copy lacks of the heads the primary reported in its last heartbeat, summed over the topics (a
    /// topic announced since counts from the next one); null until the first heartbeat of the current link.
    /// </summary>
    public long? LagRecords
    {
        get
        {
            lock (_byName)
            {
                if (!_headsReported)
                {
                    return null;
                }

                var lag = 0L;
                foreach (var t in _byName.Values)
                {
                    lag += t.Lag;
                }

                return lag;
            }
        }
    }

    public long RecordsReceived => Volatile.Read(ref _recordsReceived);

    public long BytesReceived => Volatile.Read(ref _bytesReceived);

    /// <summary>
    /// What was cut from this node's journals when it (re)joined (never acknowledged in a standby mode): a snapshot that
    /// never changes, read from any thread (<c>/status</c>) while the receive thread adds to the list, which it does by
    /// swapping in a new one (<see cref="AddTruncation"/>).
    /// </summary>
    public IReadOnlyList<string> Truncations => Volatile.Read(ref _truncations);

    /// <summary>(topic, first, next, durable) of every local copy.</summary>
    public IEnumerable<(string Topic, long First, long Next, long Durable)> Positions
    {
        get
        {
            lock (_byName)
            {
                return [.. _byName.Values.Select(t => (t.Name, t.Journal.FirstOffset, t.Journal.NextOffset, t.Journal.DurableOffset))];
            }
        }
    }

    /// <summary>(topic, offset, reason) of every copy whose primary said it cannot send its records from that offset on (its journal is damaged there), on the current link.</summary>
    public IEnumerable<(string Topic, long Offset, string Reason)> PrimaryDamage
    {
        get
        {
            lock (_byName)
            {
                var damaged = new List<(string, long, string)>();
                foreach (var t in _byName.Values)
                {
                    if (Volatile.Read(ref t.PrimaryDamage) is { } d)
                    {
                        damaged.Add((t.Name, d.Item1, d.Item2));
                    }
                }

                return damaged;
            }
        }
    }

    /// <summary>(topic, the primary's head in its last heartbeat or null, records lacking of it) of every local copy.</summary>
    public IEnumerable<(string Topic, long? PrimaryHead, long Lag)> PrimaryHeads
    {
        get
        {
            lock (_byName)
            {
                return [.. _byName.Values.Select(t => (t.Name, Volatile.Read(ref t.PrimaryHead) is var h and >= 0 ? h : (long?)null, t.Lag))];
            }
        }
    }

    /// <summary>
    /// Tests: called on the durable thread between taking a durable ACK's topic ids and socket (this many topics) and
    /// writing and sending it, the window in which a new link may replace the one the ACK was built for.
    /// </summary>
    internal Action<int>? DurableAckBuilt { get; set; }

    /// <summary>
    /// Tests: called before each step on disk of a topic copy's creation, deletion or reset, with what it is about to do
    /// (<c>delete recursively &lt;path&gt;</c> for a recursive delete); a test throws from it to stop there, as a kill would.
    /// </summary>
    internal Action<string>? FileStep { get; set; }

    /// <summary>
    /// Tests: called on the receive thread with each RECORDS frame's topic, first offset and record count before they
    /// are written; a test throws from it (<see cref="InvalidDataException"/>) to end the link there, the records
    /// unwritten, as a copy that falls behind would lack them.
    /// </summary>
    internal Action<string, long, uint>? RecordsArriving { get; set; }

    /// <summary>
    /// Tests: called on the receive thread after each received ACK it sent and on the durable thread at each wake-up,
    /// with which it is (<see cref="ReplicationThread"/>): the allocation tests read that thread's counter there.
    /// </summary>
    internal Action<ReplicationThread>? ThreadPassed { get; set; }

    /// <summary>This node's copy of <paramref name="topic"/> (tests).</summary>
    internal JournalLog? JournalOf(string topic)
    {
        lock (_byName)
        {
            return _byName.TryGetValue(topic, out var t) ? t.Journal : null;
        }
    }

    /// <summary>Each topic's head (what a promotion starts its epoch from).</summary>
    public Dictionary<string, long> Heads()
    {
        lock (_byName)
        {
            return _byName.Values.ToDictionary(t => t.Name, t => t.Journal.NextOffset, StringComparer.Ordinal);
        }
    }

    /// <summary>
    /// <see cref="Heads"/>, or null once <see cref="CloseJournals"/> has run: a closed copy holds no journals, and its
    /// empty heads must not reach a peer as this node's log (the STATUS answer says no heads are known instead).
    /// </summary>
    public Dictionary<string, long>? OpenHeads()
    {
        lock (_byName)
        {
            return _closed ? null : Heads();
        }
    }

    /// <summary>
    /// Follows the primary at <paramref name="primary"/> until the link breaks or <see cref="Dispose"/>: connect,
    /// hello, welcome, stream. Returns the reason it stopped; throws nothing for network trouble, nor for a frame from the
    /// primary that does not parse (a protocol error of this link: the reason names it, and a malformed WELCOME changes
    /// nothing on this node, see <see cref="Welcome"/>). <see cref="Dispose"/>
    /// ends it at once at any step, its connect (<see cref="TryConnect"/>) included.
    /// </summary>
    public string Run(PeerAddress primary, out long refusedEpoch)
    {
        refusedEpoch = -1;
        if (!TryConnect(primary, out var socket, out var failure))
        {
            return failure;
        }

        // Topic ids and pending acks belong to one link: the new primary numbers its topics afresh, and an ack left
        // over from the last link (a failed send, a topic replaced since) must not be sent under a reused id. The
        // socket changes under the same lock: the durable thread builds an ack and picks the socket it goes to in one
        // critical section, so an ack built with the last link's ids goes to that link's (closed) socket, never this one.
        lock (_byName)
        {
            Volatile.Write(ref _socket, socket);
            foreach (var t in _touched)
            {
                t.Touched = false;
            }

            _touched.Clear();
            _byId.Clear();
            _headsReported = false;
            foreach (var t in _byName.Values)
            {
                Volatile.Write(ref t.PrimaryHead, -1); // heads are those of the primary of this link, once it says
                Volatile.Write(ref t.PrimaryDamage, null); // as is a damage it reports
            }
        }

        if (_stopping)
        {
            socket.Dispose();
            return "stopping";
        }

        try
        {
            // Silence is how a primary that froze or lost power looks (no FIN): a receive that waits longer than the
            // heartbeat timeout ends the link, and the caller probes the peer and may ask the witness for the lease.
            // The handshake gets twice that (the primary decides truncations first): a frozen primary's kernel still
            // accepts the connection, and every such attempt delays the promotion by this much.
            Wire.KeepAlive(socket);
            socket.ReceiveTimeout = (int)Math.Ceiling(2 * _options.HeartbeatTimeout.TotalMilliseconds);
            var f = new FrameBuffer(4096);
            new Hello(_options.NodeId, _state.Epoch, [.. Positions.Select(p => (p.Topic, p.First, p.Next, p.Durable))], _state.FormatHistory()).Write(f);
            f.SendTo(socket);
            var input = new FrameInput(socket, 4 << 20);
            if (!input.Read(out var kind, out var body))
            {
                return "the primary closed the connection";
            }

            if (kind == FrameKind.Refuse)
            {
                var r = new FrameReader(body);
                refusedEpoch = r.I64();
                var role = (NodeRole)r.U8();
                return $"refused by {primary} ({role}, epoch {refusedEpoch}): {r.Str()}";
            }

            if (kind != FrameKind.Welcome)
            {
                return $"unexpected {kind} instead of a welcome";
            }

            if (!Welcome(socket, primary, body, out var why))
            {
                return why;
            }

            SendStateDigests(socket);

            _durableThread ??= StartDurableThread();
            Touch();
            socket.ReceiveTimeout = (int)Math.Ceiling(_options.HeartbeatTimeout.TotalMilliseconds); // heartbeats every HeartbeatInterval
            return Stream(socket, input, out refusedEpoch);
        }
        catch (SocketException ex) when (ex.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock)
        {
            return $"nothing from the primary for {SinceLastHeard.TotalMilliseconds:F0} ms (heartbeat timeout {_options.HeartbeatTimeout.TotalMilliseconds:F0} ms)";
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException or InvalidDataException or JournalException)
        {
            return ex is JournalException ? $"journal error on the standby: {ex.Message}" : ex.Message;
        }
        finally
        {
            PrimaryId = null;
            ClosePositionStores();
            socket.Dispose();
        }
    }

    /// <summary>True once <see cref="Dispose"/> was called: it can never follow a primary again.</summary>
    public bool Stopping => _stopping;

    public void Dispose()
    {
        _stopping = true;
        CancelConnect();
        Volatile.Read(ref _socket)?.Dispose();
        _durableWake.Set();
        _durableThread?.Join(TimeSpan.FromSeconds(5));
    }

    /// <summary>
    /// Closes the journals (after <see cref="Dispose"/> and after <see cref="Run"/> has returned), and writes the
    /// counts of state file lines held back (no line of them comes after).
    /// </summary>
    public void CloseJournals()
    {
        FlushStateLogs();
        lock (_byName)
        {
            _closed = true;
            foreach (var t in _byName.Values)
            {
                t.Journal.Dispose();
            }

            _byName.Clear();
            _byId.Clear();
        }
    }

    private void Step(string what) => FileStep?.Invoke(what);

    private void Touch() => Volatile.Write(ref _lastHeardTicks, Stopwatch.GetTimestamp());

    private ReplicaTopic Register(string name, JournalLog journal)
    {
        var t = new ReplicaTopic(name, journal);

        // Retention on this copy follows the primary's: until the primary says what it keeps, keep everything.
        journal.RetentionFloor = () => Volatile.Read(ref t.PrimaryFirst);
        lock (_byName)
        {
            _byName[name] = t;
        }

        return t;
    }

    private sealed class ReplicaTopic(string name, JournalLog journal)
    {
        public string Name { get; } = name;

        public JournalLog Journal { get; } = journal;

        public uint Id { get; set; }

        public bool Touched { get; set; }

        public volatile bool DurablePending;

        /// <summary>The primary asked for a flush (a standby-durable confirmation waits).</summary>
        public volatile bool FlushWanted;

        /// <summary>Records not asked to be flushed at once: the next background flush covers them.</summary>
        public volatile bool FlushLater;

        /// <summary>The oldest offset the primary keeps (<see cref="FrameKind.Retained"/>); 0 until it says.</summary>
        public long PrimaryFirst;

        /// <summary>The topic's head in the primary's last heartbeat on this link; -1 until it says.</summary>
        public long PrimaryHead = -1;

        /// <summary>The primary of this link cannot send records from this offset on (its journal is damaged there), and why; null if it has not said so.</summary>
        public Tuple<long, string>? PrimaryDamage;

        /// <summary>The creation id in this copy's <c>topic.meta</c> (0: none), read once when a held <c>producers.state</c> is checked against it.</summary>
        public ulong? Incarnation { get; set; }

        /// <summary>The last damage logged (receive thread): logged again only when it changes.</summary>
        public (long Offset, string Reason) DamageLogged;

        /// <summary>Records of <see cref="PrimaryHead"/> this copy lacks (0 while the head is unknown).</summary>
        public long Lag => Math.Max(0, Volatile.Read(ref PrimaryHead) - Journal.NextOffset);
    }
}
