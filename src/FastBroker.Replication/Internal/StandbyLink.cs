using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using FastBroker.Engine;
using FastBroker.Journal;

namespace FastBroker.Replication.Internal;

/// <summary>One connected standby: the sender thread, the ack thread, and per-topic readers and positions.</summary>
internal sealed partial class StandbyLink : IDisposable
{
    private const int RunBytes = 256 << 10;
    private const int InlineRunBytes = 64 << 10;

    /// <summary>What the journaler ships of one topic per batch on its own thread (the sender thread takes the rest).</summary>
    private const int InlineShipBytes = 64 << 10;
    private const int TopicBudgetBytes = 1 << 20;

    /// <summary>Why the link ended when the standby sent a REFUSE (its reason is logged on a line of its own).</summary>
    private const string RefusedReason = "the standby refused the stream";

    /// <summary>
    /// How long a send of a run straight from the journal's mapping may wait for the socket before what is left is
    /// copied and the reader parked (<see cref="SendMapped"/>): the longest a stalled standby keeps a segment retention
    /// deleted on disk. 100 ms: a 256 KiB run drains in about 2 ms at 1 Gbit/s, so a standby that keeps up is sent
    /// every run from the mapping.
    /// </summary>
    private static readonly TimeSpan s_mappedSendHold = TimeSpan.FromMilliseconds(100);

    /// <summary>How long the sender gathers local-mode records before shipping them (the standby's lag in local mode).</summary>
    private static readonly TimeSpan s_coalescePause = TimeSpan.FromMilliseconds(1);

    private readonly PrimaryReplicator _owner;
    private readonly Socket _socket;
    private readonly Hello _hello;
    private readonly ConcurrentQueue<TopicState> _created = new();
    private readonly List<LinkTopic> _topics = [];
    private readonly StateCopies _stateCopies = new(); // sender thread: what the standby holds of the state files
    private readonly List<PositionUpdate> _positionUpdates = [];
    private readonly object _sendLock = new();
    private readonly object _passLock = new();
    private readonly Dictionary<TopicState, LinkTopic> _byTopic = new(ReferenceEqualityComparer.Instance);
    private readonly FrameBuffer _nowFrame = new(InlineShipBytes + (4 << 10));
    private readonly FrameBuffer _unsent = new(InlineShipBytes + (4 << 10));
    private volatile LinkTopic[] _byId = [];
    private volatile bool _stopping;
    private int _ended; // 1 once EndLink ran: the link's end is reported once
    private Thread? _sender;
    private Thread? _acker;
    private readonly ConfirmBatch _ackConfirms = new(); // under the ack lock
    private readonly object _ackLock = new();
    private readonly FrameInput _ackInput;
    private long _lastFrameTicks;
    private long _lastAckTicks;
    private long _acksReceived;
    private long _bytesSent;
    private long _stateFilesSent;
    private long _stateFilesRemoved;
    private long _journalerShips;
    private long _journalerAcks;
    private long _journalerDeferred;
    private long _connectedAt = Stopwatch.GetTimestamp();
    private long _acksBeforeHeartbeat = -1; // AcksReceived when the first heartbeat went out (-1: none yet)
    private bool _stayedUpTold; // sender thread

    public StandbyLink(PrimaryReplicator owner, Socket socket, Hello hello)
    {
        _owner = owner;
        _socket = socket;
        _hello = hello;
        _scan = new StateScan(owner.Broker.Options.DataDirectory);
        _ackInput = new FrameInput(socket, 64 << 10);
        socket.NoDelay = true;
    }

    public string StandbyId => _hello.NodeId;

    /// <summary>
    /// The link stayed up: the standby acknowledged something after the first heartbeat went out (its answer to it, or
    /// a keep-alive), so it is no longer one of a run of links that each end at once (<see cref="PrimaryReplicator.LogLink"/>).
    /// </summary>
    public bool StayedUp => Volatile.Read(ref _acksBeforeHeartbeat) is >= 0 and var before && AcksReceived > before;

    public long BytesSent => Volatile.Read(ref _bytesSent);

    /// <summary>State files sent whole on this link (<see cref="FrameKind.State"/> frames: at the attach, those whose copy the standby's STATE_DIGESTS did not report as the primary's file; then those whose contents it lacks or asks for).</summary>
    public long StateFilesSent => Volatile.Read(ref _stateFilesSent);

    /// <summary>Copies of state files the standby was told to remove on this link (<see cref="FrameKind.StateGone"/>: the primary no longer has the file).</summary>
    public long StateFilesRemoved => Volatile.Read(ref _stateFilesRemoved);

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

        // A thread of the link may be crediting an ACK (the ack reader, or the journaler, which is not joined): the
        // replacing link starts after this returns, and resets the topics' positions after that credit, never before.
        WaitOutAcks();
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

    private sealed class LinkTopic(TopicState topic, uint id, ReplicaAcks acks, long from)
    {
        public TopicState Topic { get; } = topic;

        public uint Id { get; } = id;

        public ReplicaAcks Acks { get; } = acks;

        public long From { get; } = from;

        private volatile bool _announced;
        private long _shippedEnd = from;

        /// <summary>Its TOPIC frame was sent (set before the send; read by the ack reader, which checks an ACK against it).</summary>
        public bool Announced
        {
            get => _announced;
            set => _announced = value;
        }

        public JournalReader? Reader { get; set; }

        /// <summary>
        /// The offset after the last record shipped: set before the records' bytes go to the socket, so an ACK the
        /// standby sends for them never finds it behind (the ack reader's check, <see cref="StandbyLink.CheckAck"/>).
        /// </summary>
        public long ShippedEnd
        {
            get => Volatile.Read(ref _shippedEnd);
            set => Volatile.Write(ref _shippedEnd, value);
        }

        /// <summary>Under the ack lock: the received position of the last ACK of this topic on this link (its start before one).</summary>
        public long AckedReceived { get; set; } = from;

        /// <summary>Under the ack lock: the durable position of the last ACK of this topic on this link (0 before one).</summary>
        public long AckedDurable { get; set; }

        /// <summary><see cref="ShippedEnd"/> when the last FLUSH was sent.</summary>
        public long FlushRequested { get; set; } = from;

        /// <summary>The topic's tail in the last <see cref="FrameKind.Retained"/> sent (-1: none yet).</summary>
        public long RetainedSent { get; set; } = -1;

        /// <summary>Where the reader continued after retention passed it: nothing more is shipped.</summary>
        public long? GapAt { get; set; }

        /// <summary>Where the primary's journal holds a damaged record: nothing from there on is shipped on this link.</summary>
        public long? DamagedAt { get; set; }
    }
}
