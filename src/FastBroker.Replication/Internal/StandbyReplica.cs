using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
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
    private long _recordsReceived;
    private readonly bool _verifySealedSegments;
    private long _bytesReceived;

    public StandbyReplica(ReplicationOptions options, NodeState state, bool verifySealedSegments)
    {
        _options = options;
        _stateFlusher.Log = options.Log;
        _state = state;
        _verifySealedSegments = verifySealedSegments;
        _topicsRoot = Path.Combine(options.DataDirectory, "topics");
        Directory.CreateDirectory(_topicsRoot);
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

    /// <summary>What was cut from this node's journals when it (re)joined (never acknowledged in a standby mode).</summary>
    public List<string> Truncations { get; } = [];

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
    /// Tests: called on the durable thread between building a durable ACK (with this many topics) and sending it, the
    /// window in which a new link may replace the one the ACK was built for.
    /// </summary>
    internal Action<int>? DurableAckBuilt { get; set; }

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
    /// Follows the primary at <paramref name="primary"/> until the link breaks or <see cref="Dispose"/>: connect,
    /// hello, welcome, stream. Returns the reason it stopped; throws nothing for network trouble, nor for a frame from the
    /// primary that does not parse (a protocol error of this link: the reason names it, and a malformed WELCOME changes
    /// nothing on this node, see <see cref="Welcome"/>). <see cref="Dispose"/>
    /// ends it at once at any step, its connect (<see cref="TryConnect"/>) included.
    /// </summary>
    public string Run(IPEndPoint primary, out long refusedEpoch)
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

    /// <summary>Closes the journals (after <see cref="Dispose"/> and after <see cref="Run"/> has returned).</summary>
    public void CloseJournals()
    {
        lock (_byName)
        {
            foreach (var t in _byName.Values)
            {
                t.Journal.Dispose();
            }

            _byName.Clear();
            _byId.Clear();
        }
    }

    private string Stream(Socket socket, FrameInput input, out long refusedEpoch)
    {
        refusedEpoch = -1;
        while (!_stopping)
        {
            if (!input.TryNext(out var kind, out var body))
            {
                if (_touched.Count > 0)
                {
                    CommitAndAck(socket);
                }

                HandOffState(socket);
                if (!input.Fill())
                {
                    return "the primary closed the connection";
                }

                // Bytes from the primary, if not yet a whole frame (a big run on a slow link): it is not silent.
                Touch();
                continue;
            }

            Touch();
            switch (kind)
            {
                case FrameKind.Records:
                    if (!OnRecords(socket, body, out refusedEpoch, out var why))
                    {
                        return why;
                    }

                    break;
                case FrameKind.Topic:
                    OnTopic(body);
                    break;
                case FrameKind.State:
                    OnState(body);
                    break;
                case FrameKind.Positions:
                    OnPositions(body);
                    break;
                case FrameKind.Flush:
                    OnFlush(body);
                    break;
                case FrameKind.Retained:
                    OnRetained(body);
                    break;
                case FrameKind.Heartbeat:
                    var heartbeat = new FrameReader(body);
                    var epoch = heartbeat.I64();
                    if (epoch < _state.Epoch)
                    {
                        refusedEpoch = _state.Epoch;
                        return $"heartbeat from a stale primary (epoch {epoch} < {_state.Epoch})";
                    }

                    OnHeads(ref heartbeat);

                    // An empty ACK answers every heartbeat: an idle standby that stops answering (frozen, its host
                    // gone without a FIN) is how the primary tells it from one with nothing to acknowledge.
                    lock (_sendLock)
                    {
                        EmptyAck(_heartbeatAck).SendTo(socket); // SendTo empties the buffer: built again each time
                    }

                    break;
                default:
                    return $"unexpected replication frame {kind}";
            }

            if (input.Drained)
            {
                if (_touched.Count > 0)
                {
                    CommitAndAck(socket);
                }

                HandOffState(socket);
            }
        }

        return "stopping";
    }

    private bool OnRecords(Socket socket, ReadOnlySpan<byte> body, out long refusedEpoch, out string why)
    {
        refusedEpoch = -1;
        why = "";
        var r = new FrameReader(body);
        var epoch = r.I64();
        var id = r.U32();
        var first = r.I64();
        var count = r.U32();
        var length = (int)r.U32();
        var records = r.Take(length);
        if (epoch != _state.Epoch)
        {
            refusedEpoch = _state.Epoch;
            why = $"records of epoch {epoch} while following epoch {_state.Epoch}";
            return false;
        }

        if (id >= _byId.Count || _byId[(int)id] is not { } t)
        {
            throw new InvalidDataException($"records for unknown topic id {id}");
        }

        var journal = t.Journal;
        var offset = first;
        var spin = new SpinWait();
        while (!records.IsEmpty)
        {
            if (journal.TryAppendRecords(records, offset, out var appended))
            {
                break;
            }

            // Back-pressure (too much not yet flushed): skip what went in, let the flusher catch up.
            records = Skip(records, appended);
            offset += appended;
            journal.Commit();
            spin.SpinOnce(sleep1Threshold: 20);
        }

        if (!t.Touched)
        {
            t.Touched = true;
            _touched.Add(t);
        }

        Interlocked.Add(ref _recordsReceived, count);
        Interlocked.Add(ref _bytesReceived, length);
        return true;
    }

    /// <summary>The heads in a heartbeat: how far each topic's journal goes on the primary (what the lag is measured to).</summary>
    private void OnHeads(ref FrameReader r)
    {
        // Read and checked whole before any is applied.
        var n = r.U32();
        var heads = new List<(ReplicaTopic Topic, long Head)>((int)Math.Min(n, 1024));
        for (var i = 0; i < n; i++)
        {
            var id = r.U32();
            var head = r.I64();
            if (id >= _byId.Count || _byId[(int)id] is not { } t)
            {
                throw new InvalidDataException($"head for unknown topic id {id}");
            }

            heads.Add((t, head));
        }

        foreach (var (t, head) in heads)
        {
            Volatile.Write(ref t.PrimaryHead, head);
        }

        _headsReported = true;
    }

    /// <summary>A standby-durable confirmation waits: flush this topic after the current burst (not in the background).</summary>
    private void OnFlush(ReadOnlySpan<byte> body)
    {
        var id = new FrameReader(body).U32();
        if (id >= _byId.Count || _byId[(int)id] is not { } t)
        {
            throw new InvalidDataException($"flush for unknown topic id {id}");
        }

        t.FlushWanted = true;
        if (!t.Touched)
        {
            t.Touched = true;
            _touched.Add(t);
        }
    }

    /// <summary>The primary's tail in a topic: this copy's retention may delete only what lies wholly below it.</summary>
    private void OnRetained(ReadOnlySpan<byte> body)
    {
        var r = new FrameReader(body);
        var id = r.U32();
        var first = r.I64();
        if (id >= _byId.Count)
        {
            throw new InvalidDataException($"retained offset for unknown topic id {id}");
        }

        if (_byId[(int)id] is { } t)
        {
            Volatile.Write(ref t.PrimaryFirst, first);
        }
    }

    private static ReadOnlySpan<byte> Skip(ReadOnlySpan<byte> records, int count)
    {
        for (var i = 0; i < count; i++)
        {
            var length = (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(records);
            records = records[((length + 7) & ~7)..];
        }

        return records;
    }

    private void OnTopic(ReadOnlySpan<byte> body)
    {
        var r = new FrameReader(body);
        var id = (int)r.U32();
        var name = r.Str();
        var meta = r.Str();
        var from = r.I64();
        if (!TopicName.IsValid(name))
        {
            throw new InvalidDataException($"invalid topic name '{name}' from the primary");
        }

        if (id is < 0 or > MaxTopicId || from < 0)
        {
            throw new InvalidDataException($"topic '{name}' from the primary: id {(uint)id}, first offset {from}");
        }

        var dir = Path.Combine(_topicsRoot, name);
        ReplicaTopic? t;
        lock (_byName)
        {
            _byName.TryGetValue(name, out t);
        }

        if (t is null)
        {
            // Checked before anything is created: settings that do not parse leave no directory behind.
            TopicRegistry.ParseMeta(meta, $"topic '{name}' from the primary: its topic.meta");
            Directory.CreateDirectory(dir);
            // Settings durable before the journal exists, as on the primary (TopicRegistry.Create).
            DurableFile.WriteAllBytes(Path.Combine(dir, TopicRegistry.MetaFile), Encoding.UTF8.GetBytes(meta));
            DurableFile.SyncDirectory(_topicsRoot);
            t = Open(name, dir, from);
            DurableFile.SyncDirectory(dir);
        }
        else if (t.Journal.NextOffset != from)
        {
            throw new InvalidDataException($"topic '{name}': the primary streams from {from}, this copy ends at {t.Journal.NextOffset}");
        }

        lock (_byName)
        {
            while (_byId.Count <= id)
            {
                _byId.Add(null!);
            }

            _byId[id] = t;
            t.Id = (uint)id;
        }
    }

    private void CommitAndAck(Socket socket)
    {
        var f = _ackFrame;
        var flushing = false;
        f.Begin(FrameKind.Ack).U32((uint)_touched.Count);
        foreach (var t in _touched)
        {
            // Flush now only when the primary holds a standby-durable confirmation for this topic; otherwise the
            // durable thread flushes it in the background (received acks never wait for a disk).
            if (t.FlushWanted)
            {
                t.FlushWanted = false;
                t.Journal.Commit();
                t.DurablePending = true;
                flushing = true;
            }
            else
            {
                t.FlushLater = true;
            }

            f.U32(t.Id).I64(t.Journal.NextOffset).I64(t.Journal.DurableOffset);
            t.Touched = false;
        }

        f.End();
        lock (_sendLock)
        {
            f.SendTo(socket);
        }

        _touched.Clear();
        if (flushing)
        {
            _durableWake.Set();
        }
    }

    private Thread StartDurableThread()
    {
        var thread = new Thread(DurableLoop) { IsBackground = true, Name = "fastbroker-standby-durable" };
        thread.Start();
        return thread;
    }

    /// <summary>Sends each topic's flushed position once its group commit completes.</summary>
    private void DurableLoop()
    {
        var pending = new List<ReplicaTopic>();
        var nextBackground = Stopwatch.GetTimestamp();
        while (!_stopping)
        {
            _durableWake.Wait(BackgroundFlush);
            SyncStateAndAck(); // before the journals' acks: a commit's answer may wait for it
            pending.Clear();
            var background = Stopwatch.GetTimestamp() >= nextBackground;
            if (background)
            {
                nextBackground = Stopwatch.GetTimestamp() + (long)(BackgroundFlush.TotalSeconds * Stopwatch.Frequency);
            }

            lock (_byName)
            {
                foreach (var t in _byId)
                {
                    if (t is not null && (t.DurablePending || (background && t.FlushLater)))
                    {
                        if (background)
                        {
                            t.FlushLater = false;
                        }

                        pending.Add(t);
                    }
                }
            }

            if (pending.Count == 0)
            {
                if (background)
                {
                    SendKeepAlive();
                }

                continue;
            }

            try
            {
                foreach (var t in pending)
                {
                    var target = t.Journal.NextOffset;
                    t.DurablePending = false;
                    if (target > 0 && !t.Journal.WaitForDurable(target - 1, TimeSpan.FromSeconds(1)))
                    {
                        t.DurablePending = true;
                    }
                }

                // Only topics still known under their id on the current link: one replaced or renumbered meanwhile
                // (a new link, a truncation) must not have its old positions credited to another topic.
                var f = _durableFrame;
                Socket? link;
                lock (_byName)
                {
                    link = Volatile.Read(ref _socket);
                    pending.RemoveAll(t => t.Id >= _byId.Count || !ReferenceEquals(_byId[(int)t.Id], t));
                    f.Begin(FrameKind.Ack).U32((uint)pending.Count);
                    foreach (var t in pending)
                    {
                        f.U32(t.Id).I64(t.Journal.NextOffset).I64(t.Journal.DurableOffset);
                    }
                }

                f.End();
                if (pending.Count == 0 || link is null)
                {
                    f.Clear(); // nothing to send, or no link yet: the next ACK starts afresh
                    continue;
                }

                DurableAckBuilt?.Invoke(pending.Count);
                lock (_sendLock)
                {
                    f.SendTo(link); // the socket of the link whose ids it holds (SendTo empties f even if it fails)
                }
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException or JournalException)
            {
                // The receive loop notices the broken link; a disposed journal means we are stopping.
            }
        }
    }

    /// <summary>
    /// An empty ACK from the durable thread every background tick it has nothing else to send: the primary hears from
    /// this standby even while its receive thread is busy (a long catch-up write waiting for the flusher) and so
    /// detaches only a standby that is really silent (frozen, or its host gone).
    /// </summary>
    private void SendKeepAlive()
    {
        Socket? link;
        lock (_byName)
        {
            link = PrimaryId is null ? null : Volatile.Read(ref _socket);
        }

        if (link is null)
        {
            return;
        }

        try
        {
            lock (_sendLock)
            {
                EmptyAck(_keepAlive).SendTo(link);
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // The receive loop notices the broken link.
        }
    }

    private static FrameBuffer EmptyAck(FrameBuffer f)
    {
        f.Begin(FrameKind.Ack).U32(0).End();
        return f;
    }

    private void Touch() => Volatile.Write(ref _lastHeardTicks, Stopwatch.GetTimestamp());

    private void OpenExisting()
    {
        foreach (var dir in Directory.EnumerateDirectories(_topicsRoot))
        {
            var name = Path.GetFileName(dir);
            if (TopicName.IsValid(name) && File.Exists(Path.Combine(dir, TopicRegistry.MetaFile))
                && TopicRegistry.ReadMetaFile(name, Path.Combine(dir, TopicRegistry.MetaFile)).Persistent)
            {
                Open(name, dir, 0);
            }
        }
    }

    private JournalOptions JournalOptionsFor(string topicDirectory) =>
        TopicRegistry.JournalOptionsIn(topicDirectory) with
        {
            // The standby flushes by group commit whatever the topic's policy: its durable ack must mean it.
            Durability = DurabilityPolicy.GroupCommit,
            VerifySealedSegmentsOnOpen = _verifySealedSegments,
        };

    private ReplicaTopic Open(string name, string dir, long initialOffset)
    {
        var journal = JournalLog.Open(Path.Combine(dir, TopicRegistry.JournalDirectory), JournalOptionsFor(dir) with { InitialOffset = initialOffset });
        if (!journal.Recovery.IsClean)
        {
            _options.Log?.Invoke($"replication: topic '{name}' recovery: {journal.Recovery}");
        }

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

        /// <summary>Records of <see cref="PrimaryHead"/> this copy lacks (0 while the head is unknown).</summary>
        public long Lag => Math.Max(0, Volatile.Read(ref PrimaryHead) - Journal.NextOffset);
    }
}
