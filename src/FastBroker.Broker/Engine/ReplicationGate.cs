using System.Diagnostics;

namespace FastBroker.Engine;

/// <summary>
/// The primary's side of the ack modes of a failover pair: holds each confirmation that asked for
/// <see cref="AckMode.StandbyReceived"/> or <see cref="AckMode.StandbyDurable"/> until the standby's acknowledged
/// position of its topic passes the message's offset, and wakes the replicator whenever a topic has new readable
/// records. When the standby is gone, a held confirmation is failed with <see cref="BrokerErrorCode.NotReplicated"/>
/// after <see cref="AckTimeout"/> — or, if configured, confirmed as <see cref="AckMode.Local"/> at once — but never
/// confirmed as something that did not happen.
/// </summary>
internal sealed partial class ReplicationGate
{
    private readonly long _timeoutTicks;
    private readonly List<ReplicaAcks> _topics = [];
    private readonly List<ReplicaAcks> _awaiting = new(16); // the journaler's
    private int _journalerThreadId;
    private readonly object _topicsGate = new();
    private volatile bool _standbyAttached;
    private int _replicatorIdle = 1;
    private readonly object _degradeLock = new(); // degrading (counting in _degraded) against revoking the permission
    private volatile bool _degradeAllowed;
    private long _degraded;
    private long _timedOut;
    private volatile GateFailure? _failure; // set once, under _topicsGate and _stateLock, by FailAll: the gate's end

    // Broker state outside the journals: committed positions go to the standby as ordered, versioned updates; a
    // COMMIT in a standby mode is answered once the standby has applied its version. A new producer epoch takes a
    // version too: the producers' checkpoint is shipped whole before the update that carries it, and INIT_PRODUCER is
    // answered once the standby applied that. Group state is shipped whole. A hand-over asks for every changed state
    // file, followed by a version of its own.
    private readonly object _stateLock = new();
    private readonly List<PositionUpdate> _positionUpdates = [];
    private readonly Queue<StateWaiter> _stateWaiters = new();
    private readonly List<PendingConfirmation> _withheld = []; // under _stateLock: publishes a deposed node did not answer
    private int _deposedCalled;
    private long _stateVersion;
    private long _producerStateVersion; // under _stateLock: the newest epoch change not yet drained, 0 if none
    private long _stateFilesVersion; // under _stateLock: a hand-over's request not yet drained, 0 if none
    private long _stateApplied;
    private int _groupStateDirty;

    /// <param name="ackTimeout">How long a confirmation waits for the standby.</param>
    /// <param name="degradeToLocal">Confirm as local while no standby is attached, instead of waiting.</param>
    /// <param name="degradeNeedsPermission">
    /// Degrade only after <see cref="AllowDegrade"/> (a pair with a witness first records there that its standby is
    /// behind, so the standby cannot be promoted without what is confirmed as local); until then confirmations wait,
    /// and <see cref="DegradeWanted"/> asks for the permission.
    /// </param>
    /// <param name="consumerVisibility">
    /// What a record must have reached before the primary's consumers are given it (<see cref="ConsumerVisibility"/>).
    /// </param>
    public ReplicationGate(TimeSpan ackTimeout, bool degradeToLocal, bool degradeNeedsPermission = false, AckMode consumerVisibility = AckMode.Local)
    {
        if (!Enum.IsDefined(consumerVisibility))
        {
            throw new ArgumentOutOfRangeException(nameof(consumerVisibility), consumerVisibility, "not an ack mode");
        }

        ConsumerVisibility = consumerVisibility;
        AckTimeout = ackTimeout;
        DegradeToLocal = degradeToLocal;
        _degradeAllowed = degradeToLocal && !degradeNeedsPermission;
        _timeoutTicks = (long)(ackTimeout.TotalSeconds * Stopwatch.Frequency);
    }

    /// <summary>How long a confirmation waits for the standby while it is gone or behind.</summary>
    public TimeSpan AckTimeout { get; }

    /// <summary>Confirm as local (counted in <see cref="Degraded"/>) instead of waiting while no standby is attached.</summary>
    public bool DegradeToLocal { get; }

    /// <summary>
    /// Called (on the dispatcher or replicator thread, possibly once per held confirmation: keep it short and idempotent)
    /// while confirmations would degrade to local but <see cref="AllowDegrade"/> has not been called.
    /// </summary>
    public Action? DegradeWanted { get; set; }

    /// <summary>
    /// True while this node may still confirm as the primary (its witness lease valid, no newer epoch seen); null: always.
    /// Read once per dispatched batch on the journaler thread (a clock read and a few field reads), and again wherever a
    /// confirmation is released after a wait: the group commit of an fsynced topic (<see cref="DurabilityNotifier"/>), the
    /// standby's ACK (<see cref="OnStandbyAck"/>, DUPLICATE answers included), degrading to local, the standby's
    /// application of a commit or a new producer epoch (<see cref="OnStateApplied"/>). The lease can run out during any
    /// of these waits; once it has, no publish is confirmed, in any ack mode, though the node's step-down (which stops its
    /// server) is still to come: a confirmation found at its release to come too late is withheld (<see cref="Withhold"/>).
    /// </summary>
    public Func<bool>? Authority { get; set; }

    /// <summary>False once <see cref="Authority"/> says this node no longer may confirm as the primary.</summary>
    public bool MayConfirm => Authority is not { } authority || authority();

    /// <summary>
    /// Called (once, on the thread that found it: the journaler, the ack reader, a durability notifier) when a batch or a
    /// release found <see cref="MayConfirm"/> false: the node fences itself at once (closes its clients' connections)
    /// instead of waiting for its lease keeper's timer.
    /// </summary>
    public Action? Deposed { get; set; }

    /// <summary>
    /// Any thread: a publish of a batch dispatched after <see cref="MayConfirm"/> turned false, or whose confirmation was
    /// due (durable here, or acknowledged by the standby) once it had. It is neither
    /// confirmed nor failed now: its connection is being closed (<see cref="Deposed"/>), so the client resends it to the
    /// new primary, as it does every publish a fence leaves unanswered (an error would reach the application instead).
    /// <see cref="FailAll"/>, at the step-down, fails it with the rest.
    /// </summary>
    public void Withhold(in PendingConfirmation confirmation)
    {
        lock (_stateLock)
        {
            if (_failure is { } failure)
            {
                confirmation.Fail(failure.Code, failure.Reason);
                return;
            }

            _withheld.Add(confirmation);
        }

        NoteDeposed();
    }

    /// <summary>Calls <see cref="Deposed"/>, the first time only.</summary>
    private void NoteDeposed()
    {
        if (Interlocked.Exchange(ref _deposedCalled, 1) == 0)
        {
            Deposed?.Invoke();
        }
    }

    /// <summary>True while confirmations may degrade to local (when no standby is attached).</summary>
    public bool DegradeAllowed => _degradeAllowed;

    /// <summary>Wakes the replicator (any thread, allocation-free).</summary>
    public Action? Wake { get; set; }

    /// <summary>Ships a topic's new records on the calling (journaler) thread; false when it could not (wake instead).</summary>
    public Func<TopicState, bool>? ShipNow { get; set; }

    /// <summary>
    /// Reads the standby's acknowledgements that have already arrived, on the calling (journaler) thread, without
    /// blocking; false when it could not look (the ack reader has the link at that moment).
    /// </summary>
    public Func<bool>? PollAcks { get; set; }

    /// <summary>
    /// How long (in <see cref="Stopwatch"/> ticks) the journaler polls for the standby's acknowledgement after shipping
    /// records a standby-received confirmation waits for, while no new publish arrives (0: it never does).
    /// </summary>
    public long AckPollTicks { get; set; }

    /// <summary>
    /// True from the replicator's welcome of a standby (its topics, cuts and state files sent) until that standby leaves:
    /// standby-mode confirmations wait for it. False while a standby's link is accepted but not yet welcomed.
    /// </summary>
    public bool StandbyAttached => _standbyAttached;

    /// <summary>Standby-mode confirmations given as local because no standby was attached.</summary>
    public long Degraded => Volatile.Read(ref _degraded);

    /// <summary>Standby-mode publishes failed with <see cref="BrokerErrorCode.NotReplicated"/>.</summary>
    public long TimedOut => Volatile.Read(ref _timedOut);

    /// <summary>The per-topic acknowledgement state (created on first use).</summary>
    public ReplicaAcks For(TopicState topic)
    {
        if (topic.Replica is { } r)
        {
            return r;
        }

        lock (_topicsGate)
        {
            if (topic.Replica is null)
            {
                var acks = new ReplicaAcks(topic, this);
                if (_failure is { } failure)
                {
                    acks.FailAll(failure.Code, failure.Reason); // created after FailAll: it holds nothing either
                }

                _topics.Add(acks);
                topic.Replica = acks;
            }

            return topic.Replica;
        }
    }

    /// <summary>
    /// Dispatcher thread: hold a confirmation until the standby has the message (or confirm now if it has); after
    /// <see cref="FailAll"/>, fail it at once as that did.
    /// </summary>
    public void Enqueue(TopicState topic, AckMode mode, in PendingConfirmation confirmation)
    {
        if (_failure is { } failure)
        {
            confirmation.Fail(failure.Code, failure.Reason);
            return;
        }

        if (!_standbyAttached && DegradeToLocal)
        {
            if (TryCountDegraded())
            {
                confirmation.Confirm();
                return;
            }

            DegradeWanted?.Invoke();
        }

        var acks = For(topic);
        acks.Enqueue(mode, confirmation, Stopwatch.GetTimestamp());

        // The standby may have left (or degrading been allowed) between the check above and the enqueue, after the
        // releasing thread emptied this queue: release it again rather than leave the confirmation to time out.
        if (!_standbyAttached && _degradeAllowed)
        {
            ReleaseDegraded(acks);
        }
    }

    /// <summary>Replicator: the standby connected (or left). Leaving with degrade-to-local releases everything held as local.</summary>
    public void SetStandbyAttached(bool attached)
    {
        _standbyAttached = attached;
        RefreshVisibility();
        if (!attached && DegradeToLocal)
        {
            if (_degradeAllowed)
            {
                ReleaseAllDegraded();
            }
            else
            {
                DegradeWanted?.Invoke();
            }
        }
    }

    /// <summary>
    /// Lets confirmations degrade to local while no standby is attached, and releases those held now if none is (see
    /// the constructor's <c>degradeNeedsPermission</c>).
    /// </summary>
    public void AllowDegrade()
    {
        if (!DegradeToLocal)
        {
            return;
        }

        lock (_degradeLock)
        {
            _degradeAllowed = true;
        }

        RefreshVisibility();
        if (!_standbyAttached)
        {
            ReleaseAllDegraded();
        }
    }

    /// <summary>
    /// Withdraws the permission to degrade, unless a confirmation degraded since <see cref="Degraded"/> read
    /// <paramref name="degradedSeen"/> (false: nothing changed). Once it returns true, nothing degrades until
    /// <see cref="AllowDegrade"/>.
    /// </summary>
    public bool TryRevokeDegrade(long degradedSeen)
    {
        lock (_degradeLock)
        {
            if (Volatile.Read(ref _degraded) != degradedSeen)
            {
                return false;
            }

            _degradeAllowed = false;
        }

        RefreshVisibility();
        return true;
    }

    /// <summary>Counts one confirmation as degraded if degrading is allowed and no standby is attached.</summary>
    private bool TryCountDegraded()
    {
        lock (_degradeLock)
        {
            if (!_degradeAllowed || _standbyAttached)
            {
                return false;
            }

            Interlocked.Increment(ref _degraded);
            return true;
        }
    }

    private void ReleaseDegraded(ReplicaAcks acks)
    {
        lock (_degradeLock)
        {
            if (_degradeAllowed && !_standbyAttached)
            {
                Interlocked.Add(ref _degraded, acks.ReleaseAll());
            }
        }
    }

    private void ReleaseAllDegraded()
    {
        foreach (var t in Snapshot())
        {
            ReleaseDegraded(t);
        }

        lock (_stateLock)
        {
            if (_stateWaiters.Count > 0 && !MayConfirm)
            {
                // Deposed while they waited: left for the step-down's FailAll, never answered as local.
                NoteDeposed();
                return;
            }

            while (_stateWaiters.Count > 0 && TryCountDegraded())
            {
                _stateWaiters.Dequeue().Completion.TrySetResult();
            }
        }
    }

    /// <summary>
    /// Replicator's ack reader: the standby holds records below these offsets (received / flushed). The
    /// confirmations this releases go through <paramref name="batch"/>; the caller ends it once the ACK frame is done.
    /// </summary>
    public void OnStandbyAck(TopicState topic, long receivedNext, long durableNext, ConfirmBatch batch) => For(topic).OnAck(receivedNext, durableNext, batch);

    /// <summary>
    /// Dispatcher, end of a batch: <paramref name="topic"/> has new readable records. Wakes the replicator at once when
    /// a confirmation of this topic waits for the standby or the replicator is idle; otherwise it is in its short
    /// coalescing pause and ships them when that ends — so local-mode traffic does not cost a cross-thread wake-up
    /// (and a standby round trip of CPU on a small machine) per batch.
    /// </summary>
    public void RecordsReadable(TopicState topic)
    {
        Interlocked.MemoryBarrier(); // the records' publication before the idle flag's read (pairs with SetReplicatorIdle)
        if (topic.Replica is { HeldCount: > 0 } replica && ShipNow is { } shipNow && shipNow(topic))
        {
            if (replica.HeldCount > replica.DurableHeldCount && AckPollTicks > 0 && Environment.CurrentManagedThreadId == _journalerThreadId)
            {
                _awaiting.Add(replica);
            }

            return;
        }

        if (Volatile.Read(ref _replicatorIdle) != 0 || topic.Replica is { HeldCount: > 0 })
        {
            Wake?.Invoke();
        }
    }

    /// <summary>
    /// Journaler, end of a batch whose records it shipped to the standby itself for standby-received confirmations:
    /// polls for the standby's ACK on this thread until they are released, a new publish is claimed in
    /// <paramref name="ring"/> after <paramref name="sequence"/>, or <see cref="AckPollTicks"/> pass. The ACK comes
    /// one loopback (or LAN) round trip later; a thread blocked in a receive would add its own wake-up to every such
    /// confirmation.
    /// </summary>
    public void AwaitAcks(FastBroker.Ring.RingBuffer<PublishEntry> ring, long sequence)
    {
        _journalerThreadId = Environment.CurrentManagedThreadId; // a durability flusher's wake-ups do not poll
        if (_awaiting.Count == 0)
        {
            return;
        }

        if (PollAcks is { } poll)
        {
            var deadline = Stopwatch.GetTimestamp() + AckPollTicks;
            while (true)
            {
                poll();
                if (!AnyAwaiting() || ring.Cursor > sequence || Stopwatch.GetTimestamp() > deadline)
                {
                    break;
                }

                Thread.Yield();
            }
        }

        _awaiting.Clear();
    }

    private bool AnyAwaiting()
    {
        foreach (var r in _awaiting)
        {
            if (r.HeldCount > r.DurableHeldCount)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Replicator: true before it sleeps until woken (it must look for records once more after this call), false when
    /// it only pauses to coalesce.
    /// </summary>
    public void SetReplicatorIdle(bool idle) => Interlocked.Exchange(ref _replicatorIdle, idle ? 1 : 0);

    /// <summary>Timer: fails confirmations held longer than <see cref="AckTimeout"/>.</summary>
    public void CheckTimeouts()
    {
        var deadline = Stopwatch.GetTimestamp() - _timeoutTicks;
        foreach (var t in Snapshot())
        {
            Interlocked.Add(ref _timedOut, t.FailOlderThan(deadline, AckTimeout));
        }

        lock (_stateLock)
        {
            while (_stateWaiters.TryPeek(out var w) && w.Since < deadline)
            {
                _stateWaiters.Dequeue();
                Interlocked.Increment(ref _timedOut);
                w.Completion.TrySetException(new BrokerException(
                    BrokerErrorCode.NotReplicated,
                    $"{w.What} on the primary, but the standby did not acknowledge it within {AckTimeout.TotalMilliseconds:0} ms; not confirmed"));
            }
        }
    }

    /// <summary>
    /// Fails everything still held (the node is closing or stepping down), and, from then on, every confirmation and
    /// state wait the gate is given, at once and with the same error: one whose publish or commit was made before this
    /// call and whose wait begins after it would otherwise wait for <see cref="AckTimeout"/> and be failed as
    /// <see cref="BrokerErrorCode.NotReplicated"/>, or for ever once the broker is closed (its timer checks no timeouts).
    /// </summary>
    public void FailAll(BrokerErrorCode code, string reason)
    {
        ReplicaAcks[] topics;
        lock (_topicsGate)
        {
            _failure ??= new GateFailure(code, reason);
            topics = [.. _topics];
        }

        // Each is failed for good under its lock: a confirmation the dispatcher holds after this is failed there.
        foreach (var t in topics)
        {
            t.FailAll(code, reason);
        }

        lock (_stateLock)
        {
            while (_stateWaiters.TryDequeue(out var w))
            {
                w.Completion.TrySetException(new BrokerException(code, reason));
            }

            foreach (var w in _withheld)
            {
                w.Fail(code, reason);
            }

            _withheld.Clear();
        }
    }

    public ReplicaAcks[] Snapshot()
    {
        lock (_topicsGate)
        {
            return [.. _topics];
        }
    }
}

/// <summary>What <see cref="ReplicationGate.FailAll"/> failed everything with.</summary>
internal sealed record GateFailure(BrokerErrorCode Code, string Reason);
