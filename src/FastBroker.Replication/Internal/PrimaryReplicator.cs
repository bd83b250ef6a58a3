using System.Diagnostics;
using System.Net.Sockets;
using FastBroker.Engine;
using FastBroker.Journal;
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
    private string? _lastRefusal;
    private readonly Dictionary<string, JournalDamage> _damage = new(StringComparer.Ordinal);
    private readonly RepeatedLogLines _linkLog;

    public PrimaryReplicator(Broker broker, ReplicationGate gate, NodeState state, ReplicationOptions options, Action<long> sawHigherEpoch)
    {
        _broker = broker;
        _gate = gate;
        _state = state;
        _options = options;
        _sawHigherEpoch = sawHigherEpoch;
        _linkLog = new RepeatedLogLines(LogRateLimit.DefaultInterval, options.LogClock);
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

    /// <summary>Tests: called on a link's sender thread with the path (relative, '/'-separated) of each state file it sends whole.</summary>
    internal Action<string>? StateFileSent { get; set; }

    /// <summary>Tests: called on a link's sender thread with the path (relative, '/'-separated) of each state file whose copy it tells the standby to remove.</summary>
    internal Action<string>? StateFileGone { get; set; }

    /// <summary>
    /// The period within which the heartbeats' checks read every state file, whatever the change marks say (the
    /// fallback for a change nothing signalled): 30 s. The rolling pass reads them a slice per heartbeat, each pass
    /// within half of it (<see cref="StateScan.Plan"/>).
    /// </summary>
    internal TimeSpan StateRescanInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Tests: called on a link's sender thread with the path (relative, '/'-separated) of each state file it reads.</summary>
    internal Action<string>? StateFileRead { get; set; }

    /// <summary>Tests: called on a link's sender thread with the link and the topic just before the link resets the topic's standby positions (its start).</summary>
    internal Action<StandbyLink, TopicState>? PositionsReset { get; set; }

    /// <summary>Tests: called under a link's ack lock with the link and the topic just before an ACK of the link credits the topic's standby positions.</summary>
    internal Action<StandbyLink, TopicState>? AckCrediting { get; set; }

    /// <summary>
    /// Tests: called with a link that ended or was replaced (on the thread that ends or replaces it) just before that
    /// thread waits for the link's ack lock, under which a thread of the link may be crediting an ACK: the link's end is
    /// reported, and the replacing link started, only once it has it.
    /// </summary>
    internal Action<StandbyLink>? AckLockWaiting { get; set; }

    /// <summary>
    /// Tests: called on each thread of a link (and on the journaler's stage of it) once per pass, with which it is
    /// (<see cref="ReplicationThread"/>): the allocation tests read that thread's counter there.
    /// </summary>
    internal Action<ReplicationThread>? ThreadPassed { get; set; }

    /// <summary>Tests: called on a link's sender thread at the end of each heartbeat's check of the state files, with what it cost.</summary>
    internal Action<StateCheckCost>? StateChecked { get; set; }

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

        if (EqualEpochDivergence(hello) is { } diverged)
        {
            if (diverged != _lastRefusal)
            {
                _lastRefusal = diverged;
                _options.Log?.Invoke($"replication: {diverged}");
            }

            Refuse(socket, diverged);
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
        if (link.StayedUp)
        {
            OnLinkStayedUp(); // if its sender thread has not yet: this line is not a repeat
        }

        LogLink($"replication: standby '{link.StandbyId}' disconnected: {reason}");
        bool disposed;
        lock (_linkGate)
        {
            disposed = _disposed;
        }

        if (disposed)
        {
            _linkLog.EndAll(_options.Log); // Dispose found no link (this took it first) and may have flushed before this line
        }

        // Its threads and journal readers (mapped segments) go too; off this thread, which is one of the two it joins.
        ThreadPool.UnsafeQueueUserWorkItem(static l => l.Dispose(), link, preferLocal: false);
    }

    internal void OnHigherEpoch(long epoch) => _sawHigherEpoch(epoch);

    /// <summary>
    /// A line of a link's life (attached, disconnected and why, refused by the standby): a standby that reconnects every
    /// round and whose link ends the same way each time (it refuses the stream, or ends the link) repeats them all, so
    /// each text is written at once, then at most once per 10 s with the count not logged (<see cref="T:FastBroker.Engine.RepeatedLogLines"/>),
    /// until a link stays up (<see cref="OnLinkStayedUp"/>) or the replicator is disposed (the counts held back are
    /// written then, not lost).
    /// </summary>
    internal void LogLink(string line) => _linkLog.Write(_options.Log, line);

    /// <summary>
    /// The current link stayed up (<see cref="StandbyLink.StayedUp"/>): the run of links that each ended at once,
    /// if any, is over; the counts of its lines not logged are written now, and the next link line is written at once
    /// (the end of this link too, whatever the last one said).
    /// </summary>
    internal void OnLinkStayedUp() => _linkLog.EndAll(_options.Log);

    /// <summary>
    /// The topics whose journal holds a damaged record the standby cannot be sent (a link's reader met it), with where:
    /// the offset, the segment file, the byte position and the check that failed. Each stays listed while this node is
    /// primary, until retention deletes the record.
    /// </summary>
    public IReadOnlyList<JournalDamage> Damage
    {
        get
        {
            lock (_damage)
            {
                return [.. _damage.Values.OrderBy(d => d.Topic, StringComparer.Ordinal)];
            }
        }
    }

    /// <summary>
    /// A link's reader met a damaged record of <paramref name="topic"/> at <paramref name="offset"/>: listed in
    /// <see cref="Damage"/> and logged once (a later link meeting it again logs nothing). Returns what the standby is told.
    /// </summary>
    internal string OnDamaged(string topic, long offset, JournalCorruptionException e)
    {
        var damage = new JournalDamage(topic, offset, e.FilePath, e.Position, e.Reason);
        var reason = $"the primary's journal of topic '{topic}' is damaged at offset {offset} ({e.Reason} in '{e.FilePath}' at byte position {e.Position}): the standby is sent none of its records from there on";
        lock (_damage)
        {
            if (_damage.TryGetValue(topic, out var known) && known == damage)
            {
                return reason;
            }

            _damage[topic] = damage;
        }

        _options.Log?.Invoke($"replication: {reason}; the link stays up for the other topics, and a standby-mode publish to '{topic}' is not confirmed by the standby (after the ack timeout: NotReplicated, or local with DegradeToLocal). Check the journal with 'fastbroker journal verify'");
        return reason;
    }

    /// <summary>Retention deleted the damaged record of <paramref name="topic"/>: no longer listed.</summary>
    internal void DamageGone(string topic)
    {
        lock (_damage)
        {
            _damage.Remove(topic);
        }
    }

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

        link?.Dispose(); // joins its threads: no link line is written after it
        _linkLog.EndAll(_options.Log); // the counts of link lines held back, written as the primary role ends, not lost
        _gate.SetStandbyAttached(false);
    }

    /// <summary>
    /// Why a standby of this primary's epoch must not be attached, or null. Without a witness two nodes can each take
    /// the same epoch number (two promotions by hand): their records of that epoch differ, and the rejoining node's
    /// may have been confirmed (as local) just as this primary's were. Cutting them because of a node id would lose
    /// them; so a node that led the same epoch and holds records this primary would cut is refused, both logs' ends
    /// named, until an operator picks the log to keep. One that would lose nothing (it wrote nothing of its own) attaches.
    /// </summary>
    private string? EqualEpochDivergence(Hello hello)
    {
        if (hello.Epoch != _state.Epoch || !NodeState.TryParseHistory(hello.History, out var theirs, out _) || !_state.LedByAnother(hello.Epoch, theirs))
        {
            return null; // a history that does not parse is refused by the link as before
        }

        var lost = new List<string>();
        foreach (var (name, first, next, _) in hello.Topics)
        {
            var head = 0L;
            var keep = first;
            if (_broker.Topics.TryGet(name, out var topic) && topic.Persistent)
            {
                head = topic.Head;
                keep = Math.Min(next, head);
                if (_state.DivergenceOffset(hello.Epoch, theirs, name) is { } cut)
                {
                    keep = Math.Min(keep, cut);
                }
            }

            if (keep < next)
            {
                lost.Add($"'{name}' ends at {next} there and at {head} here, its records from {Math.Max(keep, first)} on are not in this log");
            }
        }

        if (lost.Count == 0)
        {
            return null;
        }

        var standby = hello.NodeId;
        return $"standby '{standby}' and this primary '{_options.NodeId}' each began epoch {hello.Epoch} (promoted separately): {string.Join("; ", lost.Take(5))}{(lost.Count > 5 ? $"; {lost.Count - 5} more topics" : "")}. "
            + $"They may have been confirmed, so '{standby}' is not cut back, and does not follow: to keep this primary's log, stop '{standby}', move its data directory away and start it again (it copies this log); "
            + $"to keep '{standby}''s, promote it (fastbroker promote), and what this primary wrote in epoch {hello.Epoch} is cut when it follows";
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
