using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using FastBroker.Engine;
using FastBroker.Journal;
using FastBroker.Net;
using FastBroker.Threading;

namespace FastBroker.Replication.Internal;

/// <summary>
/// The primary's replicator: one link to the standby at a time. Its sender thread follows every persistent topic's
/// durable end with a journal reader (the "replicator sequence" of each topic) and ships runs of whole records
/// straight from the mapping; its ack thread feeds the standby's positions to the <see cref="ReplicationGate"/>,
/// which releases the confirmations waiting for them. A standby that connects behind (or empty) gets the backlog
/// first, from the same readers, while the primary keeps accepting publishes.
/// </summary>
internal sealed class PrimaryReplicator : IDisposable
{
    private readonly Broker _broker;
    private readonly ReplicationGate _gate;
    private readonly NodeState _state;
    private readonly ReplicationOptions _options;
    private readonly Action<long> _sawHigherEpoch;
    private readonly AsyncSignal _wake = new();
    private readonly object _linkGate = new();
    private StandbyLink? _link;
    private bool _disposed;
    private long _retentionPassed;

    public PrimaryReplicator(Broker broker, ReplicationGate gate, NodeState state, ReplicationOptions options, Action<long> sawHigherEpoch)
    {
        _broker = broker;
        _gate = gate;
        _state = state;
        _options = options;
        _sawHigherEpoch = sawHigherEpoch;
        gate.Wake = _wake.Set;
        gate.ShipNow = topic => Volatile.Read(ref _link)?.TryShipNow(topic) ?? false;
        gate.PollAcks = () => Volatile.Read(ref _link)?.PollAcks() ?? false;
        gate.AckPollTicks = (long)(options.AckPoll.TotalSeconds * Stopwatch.Frequency);
    }

    public long Epoch => _state.Epoch;

    /// <summary>The current link's view (null when no standby is connected).</summary>
    public StandbyLink? Link => Volatile.Read(ref _link);

    /// <summary>
    /// Links ended because retention deleted records of a topic the standby had not been sent (it held retention back
    /// by more than <see cref="ReplicationOptions.MaxRetentionHoldBytes"/>, or they went before its link began to send
    /// them); each restarts the standby's copy of that topic. Grows only.
    /// </summary>
    public long RetentionPassed => Volatile.Read(ref _retentionPassed);

    internal Broker Broker => _broker;

    internal ReplicationGate Gate => _gate;

    internal ReplicationOptions Options => _options;

    internal AsyncSignal WakeSignal => _wake;

    /// <summary>A standby said hello (listener thread): answer and start streaming to it, replacing any older link.</summary>
    public void Attach(Socket socket, Hello hello)
    {
        if (hello.Epoch > _state.Epoch)
        {
            // It has followed (or been) a newer primary: we are the stale one.
            Refuse(socket, $"standby '{hello.NodeId}' is at epoch {hello.Epoch}, newer than this primary's {_state.Epoch}");
            _sawHigherEpoch(hello.Epoch);
            return;
        }

        StandbyLink? old;
        var link = new StandbyLink(this, socket, hello);
        lock (_linkGate)
        {
            if (_disposed)
            {
                socket.Dispose();
                return;
            }

            old = _link;
            _link = link;
        }

        old?.Dispose();
        link.Start();
    }

    internal void OnLinkDown(StandbyLink link, string reason)
    {
        lock (_linkGate)
        {
            if (!ReferenceEquals(_link, link))
            {
                return;
            }

            _link = null;
        }

        _gate.SetStandbyAttached(false);
        _options.Log?.Invoke($"replication: standby '{link.StandbyId}' disconnected: {reason}");

        // Its threads and journal readers (mapped segments) go too; off this thread, which is one of the two it joins.
        ThreadPool.UnsafeQueueUserWorkItem(static l => l.Dispose(), link, preferLocal: false);
    }

    internal void OnHigherEpoch(long epoch) => _sawHigherEpoch(epoch);

    internal void CountRetentionPassed() => Interlocked.Increment(ref _retentionPassed);

    internal string NodeHistory() => _state.FormatHistory();

    internal long? DivergenceOffset(Hello hello, string topic) => _state.DivergenceOffset(hello.Epoch, NodeState.ParseHistory(hello.History), topic);

    public void Dispose()
    {
        StandbyLink? link;
        lock (_linkGate)
        {
            _disposed = true;
            link = _link;
            _link = null;
        }

        link?.Dispose();
        _gate.SetStandbyAttached(false);
    }

    private void Refuse(Socket socket, string reason)
    {
        try
        {
            var f = new FrameBuffer(256);
            f.Begin(FrameKind.Refuse).I64(_state.Epoch).U8((byte)NodeRole.Primary).Str(reason).End();
            f.SendTo(socket);
        }
        catch (SocketException)
        {
        }
        finally
        {
            socket.Dispose();
        }
    }
}

/// <summary>
/// A standby's opening: who it is, the epoch it last followed, what each of its topics holds (first, next, and the
/// durable end: what it has flushed, which a standby-durable confirmation may count on), and its epoch history (where
/// its records stop being the primary's: see <see cref="NodeState.DivergenceOffset"/>).
/// </summary>
internal sealed record Hello(string NodeId, long Epoch, IReadOnlyList<(string Topic, long First, long Next, long Durable)> Topics, string History)
{
    public static Hello Parse(ReadOnlySpan<byte> body)
    {
        var r = new FrameReader(body);
        if (r.U32() != Wire.Magic)
        {
            throw new InvalidDataException("not a FastBroker replication hello");
        }

        var version = r.U16();
        if (version != Wire.Version)
        {
            throw new InvalidDataException($"replication protocol version {version}, this node speaks {Wire.Version}");
        }

        var epoch = r.I64();
        var id = r.Str();
        var n = r.U32();
        var topics = new List<(string, long, long, long)>((int)Math.Min(n, 4096u));
        for (var i = 0u; i < n; i++)
        {
            topics.Add((r.Str(), r.I64(), r.I64(), r.I64()));
        }

        // Checked here, where a bad HELLO closes the connection: the replicator's thread parses it again to compute cuts.
        var history = r.Str();
        return NodeState.TryParseHistory(history, out _, out var error)
            ? new Hello(id, epoch, topics, history)
            : throw new InvalidDataException($"HELLO from '{id}': epoch history: {error}");
    }

    public void Write(FrameBuffer f)
    {
        f.Begin(FrameKind.Hello).U32(Wire.Magic).U16(Wire.Version).I64(Epoch).Str(NodeId).U32((uint)Topics.Count);
        foreach (var (topic, first, next, durable) in Topics)
        {
            f.Str(topic).I64(first).I64(next).I64(durable);
        }

        f.Str(History).End();
    }
}

/// <summary>One connected standby: the sender thread, the ack thread, and per-topic readers and positions.</summary>
internal sealed partial class StandbyLink : IDisposable
{
    private const int RunBytes = 256 << 10;
    private const int InlineRunBytes = 64 << 10;

    /// <summary>What the journaler ships of one topic per batch on its own thread (the sender thread takes the rest).</summary>
    private const int InlineShipBytes = 64 << 10;
    private const int TopicBudgetBytes = 1 << 20;

    /// <summary>How long the sender gathers local-mode records before shipping them (the standby's lag in local mode).</summary>
    private static readonly TimeSpan s_coalescePause = TimeSpan.FromMilliseconds(1);

    private readonly PrimaryReplicator _owner;
    private readonly Socket _socket;
    private readonly Hello _hello;
    private readonly ConcurrentQueue<TopicState> _created = new();
    private readonly List<LinkTopic> _topics = [];
    private readonly Dictionary<string, (ulong Hash, long Length)> _stateHashes = new(StringComparer.Ordinal);
    private readonly List<PositionUpdate> _positionUpdates = [];
    private readonly object _sendLock = new();
    private readonly object _passLock = new();
    private readonly Dictionary<TopicState, LinkTopic> _byTopic = new(ReferenceEqualityComparer.Instance);
    private readonly FrameBuffer _nowFrame = new(InlineShipBytes + (4 << 10));
    private readonly FrameBuffer _unsent = new(InlineShipBytes + (4 << 10));
    private volatile LinkTopic[] _byId = [];
    private volatile bool _stopping;
    private Thread? _sender;
    private Thread? _acker;
    private readonly ConfirmBatch _ackConfirms = new(); // under the ack lock
    private readonly object _ackLock = new();
    private readonly FrameInput _ackInput;
    private long _lastFrameTicks;
    private long _lastAckTicks;
    private long _acksReceived;
    private long _bytesSent;
    private long _journalerShips;
    private long _journalerAcks;
    private long _journalerDeferred;
    private long _connectedAt = Stopwatch.GetTimestamp();

    public StandbyLink(PrimaryReplicator owner, Socket socket, Hello hello)
    {
        _owner = owner;
        _socket = socket;
        _hello = hello;
        _ackInput = new FrameInput(socket, 64 << 10);
        socket.NoDelay = true;
    }

    public string StandbyId => _hello.NodeId;

    public long BytesSent => Volatile.Read(ref _bytesSent);

    /// <summary>Batches the journaler shipped on its own thread (<see cref="TryShipNow"/>), sparing the sender's wake-up.</summary>
    public long JournalerShips => Volatile.Read(ref _journalerShips);

    /// <summary>Of <see cref="JournalerShips"/>, those the socket buffer could not take whole (the sender thread sent the rest).</summary>
    public long JournalerDeferred => Volatile.Read(ref _journalerDeferred);

    /// <summary>Of <see cref="AcksReceived"/>, those the journaler read itself while a confirmation waited (<see cref="PollAcks"/>).</summary>
    public long JournalerAcks => Volatile.Read(ref _journalerAcks);

    /// <summary>ACK frames received on this link (bursts, group commits, heartbeat answers and keepalives).</summary>
    public long AcksReceived => Volatile.Read(ref _acksReceived);

    public TimeSpan SinceLastAck => Stopwatch.GetElapsedTime(Volatile.Read(ref _lastAckTicks) == 0 ? _connectedAt : Volatile.Read(ref _lastAckTicks));

    /// <summary>(topic, primary head, standby received, standby durable) per replicated topic.</summary>
    public IEnumerable<(string Topic, long Head, long Received, long Durable)> Positions =>
        _byId.Select(t => (t.Topic.Name, t.Topic.Head, t.Acks.ReceivedNext, t.Acks.DurableNext));

    public void Start()
    {
        _sender = new Thread(SendLoop) { IsBackground = true, Name = "fastbroker-replicator" };
        _sender.Start();
    }

    public void Dispose()
    {
        _stopping = true;
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }

        _socket.Dispose();
        _owner.WakeSignal.Set();
        if (_sender is not null && Thread.CurrentThread != _sender)
        {
            _sender.Join(TimeSpan.FromSeconds(5));
        }

        if (_acker is not null && Thread.CurrentThread != _acker)
        {
            _acker.Join(TimeSpan.FromSeconds(5));
        }

        // Under the pass lock: the journaler may be shipping from a reader right now (it sees _stopping after).
        lock (_passLock)
        {
            foreach (var t in _topics)
            {
                t.Reader?.Dispose();
            }
        }
    }

    private void SendLoop()
    {
        var registry = _owner.Broker.Topics;
        Action<TopicState> onCreated = _created.Enqueue;
        try
        {
            var f = new FrameBuffer(1 << 20);
            var existing = registry.SubscribeToCreations(onCreated);
            lock (_passLock)
            {
                SendWelcome(f, existing);
            }

            _acker = new Thread(AckLoop) { IsBackground = true, Name = "fastbroker-replicator-acks" };
            _acker.Start();
            _owner.Gate.SetStandbyAttached(true);
            _owner.Options.Log?.Invoke($"replication: standby '{_hello.NodeId}' attached (epoch {_owner.Epoch}, {_topics.Count} topics)");
            var heartbeatTicks = (long)(_owner.Options.HeartbeatInterval.TotalSeconds * Stopwatch.Frequency);
            var nextHeartbeat = Stopwatch.GetTimestamp() + heartbeatTicks;
            var groupStateTicks = Stopwatch.Frequency / 50;
            var idle = true;
            _owner.Gate.SetReplicatorIdle(true);
            var nextGroupState = 0L;
            while (!_stopping)
            {
                long sent;
                lock (_passLock)
                {
                    sent = Pass(f, ref nextHeartbeat, ref nextGroupState, heartbeatTicks, groupStateTicks, out var more);
                    if (more)
                    {
                        continue; // catching up: the next budget at once
                    }
                }

                if (sent > 0)
                {
                    // Busy: pause to coalesce the next records (local-mode traffic); a confirmation that waits for
                    // the standby, a commit or a group-state change cuts the pause short.
                    if (idle)
                    {
                        idle = false;
                        _owner.Gate.SetReplicatorIdle(false);
                    }

                    _owner.WakeSignal.Wait(s_coalescePause);
                }
                else if (!idle)
                {
                    // Announce idleness, then look once more: records published before the dispatcher saw the flag
                    // woke nobody.
                    idle = true;
                    _owner.Gate.SetReplicatorIdle(true);
                }
                else
                {
                    // Asleep until woken or the heartbeat; and if a group-state change waits for the end of the 20 ms
                    // spacing, until then: the acks that came within it woke nobody (the change was already flagged).
                    var wakeAt = _owner.Gate.GroupStatePending ? Math.Min(nextHeartbeat, nextGroupState) : nextHeartbeat;
                    _owner.WakeSignal.Wait(TimeSpan.FromTicks(Math.Max(1, (wakeAt - Stopwatch.GetTimestamp()) * TimeSpan.TicksPerSecond / Stopwatch.Frequency)));
                }
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException or JournalException)
        {
            if (!_stopping)
            {
                _owner.OnLinkDown(this, ex.Message);
            }
        }
        finally
        {
            registry.RemoveOnCreated(onCreated);
            _stopping = true;
            _socket.Dispose();
        }
    }

    /// <summary>One pass of the sender, under the pass lock: new topics, records, positions, group state, heartbeat.</summary>
    private long Pass(FrameBuffer f, ref long nextHeartbeat, ref long nextGroupState, long heartbeatTicks, long groupStateTicks, out bool more)
    {
        if (_unsent.Length > 0)
        {
            // What the journaler's non-blocking send left over goes first: the stream stays in order.
            Send(_unsent);
        }

        while (_created.TryDequeue(out var created))
        {
            AddTopic(created, created.Tail, created.Tail);
        }

        var sent = 0L;
        more = false;
        foreach (var t in _topics)
        {
            var n = Ship(f, t);
            sent += n;
            more |= n >= TopicBudgetBytes;
        }

        if (f.Length > 0)
        {
            Send(f);
        }

        sent += ShipPositions(f);
        SendWantedStateFiles(f);
        var now = Stopwatch.GetTimestamp();
        if (now >= nextGroupState && _owner.Gate.TakeGroupStateChanged())
        {
            // Work-queue acks: shipped whole, at most every 20 ms (an ack the standby missed means a redelivery after
            // failover, never a loss). A change within the 20 ms stays flagged, and the idle sender sleeps only until
            // they end (SendLoop), so it reaches the standby within them.
            nextGroupState = now + groupStateTicks;
            SendStateFiles(f);
        }

        if (now >= nextHeartbeat)
        {
            nextHeartbeat = now + heartbeatTicks;
            SendStateFiles(f);
            foreach (var t in _topics)
            {
                var tail = t.Topic.Tail;
                if (t.Announced && tail != t.RetainedSent)
                {
                    f.Begin(FrameKind.Retained).U32(t.Id).I64(tail).End();
                    t.RetainedSent = tail;
                }
            }

            // Each announced topic's head: the standby's lag (GET /standby?lag=) is what it lacks of these.
            var announced = 0u;
            foreach (var t in _topics)
            {
                announced += t.Announced ? 1u : 0u;
            }

            f.Begin(FrameKind.Heartbeat).I64(_owner.Epoch).U32(announced);
            foreach (var t in _topics)
            {
                if (t.Announced)
                {
                    f.U32(t.Id).I64(t.Topic.Head);
                }
            }

            f.End();
            Send(f);
        }

        return sent;
    }

    private void SendWelcome(FrameBuffer f, TopicState[] existing)
    {
        var state = _owner.Broker.Topics;
        var primaryEpoch = _owner.Epoch;
        var history = _owner.NodeHistory();
        var directives = new List<(string Topic, TopicAction Action, long Offset)>();
        var resume = new Dictionary<string, long>(StringComparer.Ordinal);
        var durableOf = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (name, first, next, durable) in _hello.Topics)
        {
            if (!state.TryGet(name, out var topic) || !topic.Persistent)
            {
                directives.Add((name, TopicAction.Delete, 0));
                continue;
            }

            durableOf[name] = durable;

            var keep = Math.Min(next, topic.Head);
            // Also at an equal epoch: without a witness two nodes can each have begun it (different leaders).
            if (_hello.Epoch <= primaryEpoch && _owner.DivergenceOffset(_hello, name) is { } cut)
            {
                keep = Math.Min(keep, cut);
            }

            if (keep < topic.Tail || first > keep)
            {
                directives.Add((name, TopicAction.Reset, topic.Tail));
                resume[name] = topic.Tail;
            }
            else if (keep < next)
            {
                directives.Add((name, TopicAction.Truncate, keep));
                resume[name] = keep;
            }
            else
            {
                resume[name] = next;
            }
        }

        f.Begin(FrameKind.Welcome).I64(primaryEpoch).Str(_owner.Options.NodeId).Str(history).U32((uint)directives.Count);
        foreach (var (topic, action, offset) in directives)
        {
            f.Str(topic).U8((byte)action).I64(offset);
        }

        f.End();
        Send(f);

        // Broker state: every state file whole (read after the queued position updates are dropped, so it holds
        // them), then the version it covers; later commits follow as updates.
        var covered = _owner.Gate.BeginStateSnapshot();
        SendStateFiles(f);
        f.Begin(FrameKind.Positions).I64(covered).U32(0).End();
        Send(f);
        foreach (var t in existing)
        {
            if (t.Persistent)
            {
                var from = resume.TryGetValue(t.Name, out var r) ? r : t.Tail;
                AddTopic(t, from, durableOf.TryGetValue(t.Name, out var d) ? Math.Min(d, from) : from);
            }
        }
    }

    /// <summary>
    /// Starts streaming <paramref name="topic"/> from <paramref name="from"/>; the standby holds everything before it,
    /// flushed up to <paramref name="durable"/> (a restarted standby may hold records it never flushed).
    /// </summary>
    private void AddTopic(TopicState topic, long from, long durable)
    {
        if (!topic.Persistent || _topics.Exists(t => ReferenceEquals(t.Topic, topic)))
        {
            return;
        }

        var acks = _owner.Gate.For(topic);
        acks.ResetPositions(from, durable);
        var lt = new LinkTopic(topic, (uint)_topics.Count, acks, from);
        _topics.Add(lt);
        _byTopic[topic] = lt;
        _byId = [.. _topics];
    }

    /// <summary>
    /// Journaler thread, end of a batch in which a confirmation of <paramref name="topic"/> started waiting for the
    /// standby: ship the new records from here, sparing the sender thread's wake-up on the way to the standby. Never
    /// blocks: the sender thread may hold the link (then false, and the caller wakes it), and the send takes only
    /// what the socket buffer has room for; the rest waits in <see cref="_unsent"/> for the sender thread, which
    /// sends it before anything else. False also when records remain to ship.
    /// </summary>
    public bool TryShipNow(TopicState topic)
    {
        if (_stopping || !OperatingSystem.IsLinux() || !Monitor.TryEnter(_passLock))
        {
            return false;
        }

        try
        {
            if (_stopping || _unsent.Length > 0 || !_byTopic.TryGetValue(topic, out var t) || !t.Announced)
            {
                return false;
            }

            var f = _nowFrame;
            f.Clear();
            var more = Ship(f, t, InlineShipBytes, copy: true) >= InlineShipBytes;
            if (f.Length > 0)
            {
                Interlocked.Increment(ref _journalerShips);
                var n = SocketSendNow.TrySend(_socket, f.Written);
                if (n < f.Length)
                {
                    _unsent.Bytes(f.Written[n..]);
                    Interlocked.Increment(ref _journalerDeferred);
                    more = true;
                }

                f.Clear();
            }

            return !more;
        }
        catch (Exception ex) when (ex is ObjectDisposedException or JournalException)
        {
            return false; // the sender thread meets the same trouble and ends the link
        }
        finally
        {
            Monitor.Exit(_passLock);
        }
    }

    /// <summary>
    /// Appends up to about <paramref name="budget"/> bytes of <paramref name="t"/>'s unshipped records to
    /// <paramref name="f"/>, sending when it fills; big runs go straight from the mapping unless <paramref name="copy"/>
    /// (then nothing is sent here: the caller sends <paramref name="f"/>). Returns the record bytes taken.
    /// </summary>
    private long Ship(FrameBuffer f, LinkTopic t, int budget = TopicBudgetBytes, bool copy = false)
    {
        if (!t.Announced)
        {
            // A pinning reader: the primary's retention does not delete what this link has not shipped (a subscriber's
            // reader would skip to the tail instead, and the standby's copy would have a gap), up to a bound: a standby
            // that stays attached but stops reading (frozen, in local ack mode, with a long heartbeat timeout) must not
            // fill the primary's disk. Past it the reader is passed like a subscriber's, and the run check below ends
            // the link. The standby's silence timeout detaches a standby that stops answering, and with it this floor.
            t.Reader = t.Topic.Journal!.OpenReader(ReadStart.FromOffset(t.From), pinRetention: true);
            t.Reader.MaxRetentionHoldBytes = _owner.Options.MaxRetentionHoldBytes;
            if (t.Reader.NextOffset > t.From)
            {
                // Retention deleted the start between the welcome and now: end the link; the standby's next hello
                // finds its position below the primary's tail and the welcome restarts its copy there.
                throw GapAhead(t, t.Reader.NextOffset);
            }

            f.Begin(FrameKind.Topic).U32(t.Id).Str(t.Topic.Name).Str(TopicRegistry.FormatMeta(t.Topic.Options)).I64(t.From).End();
            t.Announced = true;
        }

        if (t.GapAt is { } gap)
        {
            throw GapAhead(t, gap); // seen on the journaler's thread, which cannot end the link
        }

        var sent = 0L;
        var epoch = _owner.Epoch;
        while (sent < budget && t.Reader!.TryReadRun(Math.Min(RunBytes, budget), out var run))
        {
            if (run.FirstOffset != t.ShippedEnd)
            {
                // Retention passed the reader (it held more than its bound back): nothing past the gap is shipped.
                throw GapAhead(t, run.FirstOffset);
            }

            f.Begin(FrameKind.Records).I64(epoch).U32(t.Id).I64(run.FirstOffset).U32((uint)run.RecordCount).U32((uint)run.Length);
            if (copy || run.Length <= InlineRunBytes)
            {
                f.Bytes(run.Bytes).End();
                if (!copy && f.Length >= RunBytes)
                {
                    Send(f);
                }
            }
            else
            {
                // A big run (catch-up): the header from the buffer, the records straight from the mapping.
                f.End(trailing: run.Length);
                lock (_sendLock)
                {
                    f.SendTo(_socket);
                    Wire.SendAll(_socket, run.Bytes);
                }
            }

            sent += run.Length;
            t.ShippedEnd = run.FirstOffset + run.RecordCount;
        }

        // A standby-durable confirmation waits on this topic: have the standby flush what it has been sent (it
        // otherwise flushes in the background, so local and standby-received traffic costs it no fsync per burst).
        if (t.Acks.DurableHeldCount > 0 && t.ShippedEnd > t.FlushRequested)
        {
            f.Begin(FrameKind.Flush).U32(t.Id).End();
            t.FlushRequested = t.ShippedEnd;
        }

        Interlocked.Add(ref _bytesSent, sent);
        return sent;
    }

    /// <summary>
    /// Ends the link (the sender thread's handler, which logs the message): the standby's next hello gets its copy of the
    /// topic restarted at the primary's tail. Counted once per link and topic (the journaler's thread may meet it first).
    /// </summary>
    private JournalException GapAhead(LinkTopic t, long offset)
    {
        if (t.GapAt is null)
        {
            t.GapAt = offset;
            _owner.CountRetentionPassed();
        }

        var limit = _owner.Options.MaxRetentionHoldBytes;
        var why = t.Reader is { PinOverrides: > 0 }
            ? $"it held retention back by more than its bound of {limit} bytes (ReplicationOptions.MaxRetentionHoldBytes)"
            : "they were deleted before this link began to send them";
        return new(
            JournalErrorCode.OffsetMismatch,
            $"topic '{t.Topic.Name}': retention passed a lagging standby: it needs offset {t.ShippedEnd} but the primary's journal continues at {offset} ({offset - t.ShippedEnd} records deleted unsent: {why}); ending the link so that the standby restarts its copy of the topic at the primary's oldest record");
    }

    private void Send(FrameBuffer f)
    {
        lock (_sendLock)
        {
            f.SendTo(_socket);
        }
    }

    private void AckLoop()
    {
        var silence = _owner.Options.StandbySilenceTimeout;
        try
        {
            // The standby answers every heartbeat, acks every burst, and its durable thread sends an empty ack every
            // 100 ms it has nothing else to send: silence for this long means it froze or its host died without a FIN
            // (TCP keepalive does not see a frozen process: its kernel still answers). Detached, its confirmations
            // fail or degrade to local as configured at once instead of each waiting out the ack timeout. Armed from
            // the standby's first frame on: before it, the standby applies the welcome's cuts and opens those
            // journals again (seconds on a cold cache), and has nothing to answer with yet; until then a generous
            // bound, so that a standby that froze right after the welcome is detached all the same.
            //
            // It waits in poll(2), not in a receive, and reads under the ack lock: the journaler may read the same
            // frames first (PollAcks) when a confirmation waits for them.
            var unarmedMicros = (int)Math.Min(int.MaxValue, Math.Max(silence.TotalMilliseconds, 30_000) * 1000);
            var silenceMicros = (int)Math.Min(int.MaxValue, silence.TotalMilliseconds * 1000);
            while (!_stopping)
            {
                var armed = Volatile.Read(ref _lastFrameTicks) != 0;
                if (!_socket.Poll(armed ? silenceMicros : unarmedMicros, SelectMode.SelectRead))
                {
                    var since = Volatile.Read(ref _lastFrameTicks);
                    if (since != 0 && Stopwatch.GetElapsedTime(since) < silence)
                    {
                        continue; // the journaler read what came
                    }

                    if (!_stopping)
                    {
                        _owner.OnLinkDown(this, $"nothing from the standby for {silence.TotalMilliseconds:F0} ms (no ack, no heartbeat answer)");
                    }

                    return;
                }

                DeferToJournaler();
                lock (_ackLock)
                {
                    if (_socket.Available == 0 && !_socket.Poll(0, SelectMode.SelectRead))
                    {
                        continue; // the journaler took it
                    }

                    // Data, or the end of the stream / an error (the receive returns 0 or throws).
                    if (!_ackInput.Fill())
                    {
                        if (!_stopping)
                        {
                            _owner.OnLinkDown(this, "the standby closed the connection");
                        }

                        return;
                    }

                    if (!HandleAckFrames())
                    {
                        return;
                    }
                }
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or InvalidDataException)
        {
            if (!_stopping)
            {
                _owner.OnLinkDown(this, ex.Message);
            }
        }
        finally
        {
            StopAcks();
        }
    }

    /// <summary>Tests only (<see cref="ReplicationOptions.AckReaderDefersFor"/>): waits until the journaler took what came, or the deferral passed.</summary>
    private void DeferToJournaler()
    {
        var deferFor = _owner.Options.AckReaderDefersFor;
        if (deferFor <= TimeSpan.Zero || _owner.Options.AckPoll <= TimeSpan.Zero)
        {
            return;
        }

        var start = Stopwatch.GetTimestamp();
        while (!_stopping && _socket.Available > 0 && Stopwatch.GetElapsedTime(start) < deferFor)
        {
            Thread.Sleep(1);
        }
    }

    /// <summary>
    /// Journaler thread (<see cref="ReplicationGate.PollAcks"/>): handles the standby's frames that have already
    /// arrived, without blocking. False when the ack reader has the link (it handles them).
    /// </summary>
    public bool PollAcks()
    {
        if (_stopping || !Monitor.TryEnter(_ackLock))
        {
            return false;
        }

        try
        {
            if (_stopping || _socket.Available == 0)
            {
                return true;
            }

            _ackInput.Fill(); // bytes are waiting: it does not block
            var before = _acksReceived;
            var handled = HandleAckFrames();
            Volatile.Write(ref _journalerAcks, _journalerAcks + (_acksReceived - before));
            if (!handled)
            {
                StopAcks();
            }

            return true;
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or InvalidDataException)
        {
            StopAcks(); // the ack reader (or the sender) meets the closed link and reports it
            return false;
        }
        finally
        {
            Monitor.Exit(_ackLock);
        }
    }

    /// <summary>Under the ack lock: every whole frame buffered. False when the standby refused the stream.</summary>
    private bool HandleAckFrames()
    {
        while (_ackInput.TryNext(out var kind, out var body))
        {
            Volatile.Write(ref _lastFrameTicks, Stopwatch.GetTimestamp());
            switch (kind)
            {
                case FrameKind.Ack:
                    OnAck(body);

                    // The connections whose publishes this ACK released get their CONFIRMs from this thread (a
                    // non-blocking send each) rather than a wake-up of their writers.
                    _ackConfirms.End();
                    break;
                case FrameKind.StateAck:
                    _owner.Gate.OnStateApplied(new FrameReader(body).I64());
                    break;
                case FrameKind.StateWanted:
                    OnStateWanted(body);
                    break;
                case FrameKind.Refuse:
                    var r = new FrameReader(body);
                    var epoch = r.I64();
                    r.U8();
                    _owner.Options.Log?.Invoke($"replication: standby refused the stream: {r.Str()}");
                    if (epoch > _owner.Epoch)
                    {
                        _owner.OnHigherEpoch(epoch);
                    }

                    return false;
                default:
                    throw new InvalidDataException($"unexpected replication frame {kind} from the standby");
            }
        }

        return true;
    }

    private void StopAcks()
    {
        _stopping = true;
        _owner.WakeSignal.Set();
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }
    }

    private void OnAck(ReadOnlySpan<byte> body)
    {
        var r = new FrameReader(body);
        var n = r.U32();
        var topics = _byId;
        for (var i = 0; i < n; i++)
        {
            var id = r.U32();
            var received = r.I64();
            var durable = r.I64();
            if (id < topics.Length)
            {
                topics[id].Acks.OnAck(received, durable, _ackConfirms);
            }
        }

        Volatile.Write(ref _lastAckTicks, Stopwatch.GetTimestamp());
        Volatile.Write(ref _acksReceived, _acksReceived + 1); // under the ack lock
    }

    private sealed class LinkTopic(TopicState topic, uint id, ReplicaAcks acks, long from)
    {
        public TopicState Topic { get; } = topic;

        public uint Id { get; } = id;

        public ReplicaAcks Acks { get; } = acks;

        public long From { get; } = from;

        public bool Announced { get; set; }

        public JournalReader? Reader { get; set; }

        /// <summary>The offset after the last record shipped.</summary>
        public long ShippedEnd { get; set; } = from;

        /// <summary><see cref="ShippedEnd"/> when the last FLUSH was sent.</summary>
        public long FlushRequested { get; set; } = from;

        /// <summary>The topic's tail in the last <see cref="FrameKind.Retained"/> sent (-1: none yet).</summary>
        public long RetainedSent { get; set; } = -1;

        /// <summary>Where the reader continued after retention passed it: nothing more is shipped.</summary>
        public long? GapAt { get; set; }
    }
}
