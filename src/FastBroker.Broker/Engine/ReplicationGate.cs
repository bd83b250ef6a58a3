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
internal sealed class ReplicationGate
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

    // Broker state outside the journals: committed positions go to the standby as ordered, versioned updates; a
    // COMMIT in a standby mode is answered once the standby has applied its version. A new producer epoch takes a
    // version too: the producers' checkpoint is shipped whole before the update that carries it, and INIT_PRODUCER is
    // answered once the standby applied that. Group state is shipped whole. A hand-over asks for every changed state
    // file, followed by a version of its own.
    private readonly object _stateLock = new();
    private readonly List<PositionUpdate> _positionUpdates = [];
    private readonly Queue<StateWaiter> _stateWaiters = new();
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
    public ReplicationGate(TimeSpan ackTimeout, bool degradeToLocal, bool degradeNeedsPermission = false)
    {
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

    /// <summary>True while a standby is connected and acknowledging.</summary>
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
                var acks = new ReplicaAcks(topic);
                _topics.Add(acks);
                topic.Replica = acks;
            }

            return topic.Replica;
        }
    }

    /// <summary>Dispatcher thread: hold a confirmation until the standby has the message (or confirm now if it has).</summary>
    public void Enqueue(TopicState topic, AckMode mode, in PendingConfirmation confirmation)
    {
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
            return true;
        }
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

    /// <summary>The standby has applied every position update up to this version.</summary>
    public long StateApplied => Volatile.Read(ref _stateApplied);

    /// <summary>
    /// A durable subscription committed <paramref name="nextOffset"/> in <paramref name="topic"/> (already stored
    /// locally): queue it for the standby and wake the replicator. Returns the update's version, for
    /// <see cref="WaitForState"/>.
    /// </summary>
    public long PositionCommitted(string subscription, string topic, long nextOffset)
    {
        long version;
        lock (_stateLock)
        {
            version = ++_stateVersion;
            _positionUpdates.Add(new PositionUpdate(version, subscription, topic, nextOffset));
        }

        Wake?.Invoke();
        return version;
    }

    /// <summary>
    /// <see cref="Broker.InitProducer"/> gave an id a new epoch and wrote it to the producers' checkpoint file (already
    /// on disk here): the replicator sends that file to the standby, then a state version covering it, within the
    /// same wake-up. Returns that version, for <see cref="WaitForState"/>.
    /// </summary>
    public long ProducerEpochsWritten() => NextStateVersion(ref _producerStateVersion);

    /// <summary>
    /// The node is handing over to its standby (a graceful stop): the replicator sends every state file that changed
    /// since it last sent it (the group state included, which it otherwise sends at most every 20 ms), then a state
    /// version covering them, within the same wake-up. Returns that version: once <see cref="StateApplied"/> reaches it,
    /// the standby has every state file as it was at this call, and every position committed before it.
    /// </summary>
    public long RequestStateFiles() => NextStateVersion(ref _stateFilesVersion);

    /// <summary>A new state version, stored in <paramref name="marker"/> (under the state lock); wakes the replicator.</summary>
    private long NextStateVersion(ref long marker)
    {
        long version;
        lock (_stateLock)
        {
            version = ++_stateVersion;
            marker = version;
        }

        Wake?.Invoke();
        return version;
    }

    /// <summary>
    /// Null when a commit (or a new producer epoch) of <paramref name="version"/> can be answered now (the mode is
    /// local, the standby already has it, or none is attached and the gate degrades to local); otherwise a task that
    /// completes when the standby has applied it, or fails with <see cref="BrokerErrorCode.NotReplicated"/> after
    /// <see cref="AckTimeout"/>. <paramref name="what"/> names the change in that error ("position committed" if null).
    /// </summary>
    public Task? WaitForState(long version, AckMode mode, string? what = null)
    {
        if (mode == AckMode.Local)
        {
            return null;
        }

        lock (_stateLock)
        {
            if (version <= _stateApplied)
            {
                return null;
            }

            if (!_standbyAttached && DegradeToLocal)
            {
                if (TryCountDegraded())
                {
                    return null;
                }

                DegradeWanted?.Invoke();
            }

            var waiter = new StateWaiter(version, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), Stopwatch.GetTimestamp(), what ?? "position committed");
            _stateWaiters.Enqueue(waiter);
            return waiter.Completion.Task;
        }
    }

    /// <summary>Replicator: moves the queued position updates (in version order) into <paramref name="into"/>.</summary>
    public void DrainPositionUpdates(List<PositionUpdate> into) => DrainStateUpdates(into, out _, out _);

    /// <summary>
    /// Replicator: moves the queued position updates (in version order) into <paramref name="into"/> and returns the
    /// newest version drained, 0 if none. <paramref name="producerEpochs"/> is true when a new producer epoch is among
    /// them: the checkpoint file must be sent (read after this call, so it holds the epoch) before that version.
    /// <paramref name="allStateFiles"/> is true when a hand-over asked for every changed state file
    /// (<see cref="RequestStateFiles"/>): they must be sent (read after this call) before that version.
    /// </summary>
    public long DrainStateUpdates(List<PositionUpdate> into, out bool producerEpochs, out bool allStateFiles)
    {
        lock (_stateLock)
        {
            into.AddRange(_positionUpdates);
            _positionUpdates.Clear();
            var version = Math.Max(Math.Max(_producerStateVersion, _stateFilesVersion), into.Count > 0 ? into[^1].Version : 0);
            producerEpochs = _producerStateVersion != 0;
            allStateFiles = _stateFilesVersion != 0;
            _producerStateVersion = 0;
            _stateFilesVersion = 0;
            return version;
        }
    }

    /// <summary>
    /// Replicator, a standby attached: drops the queued updates, which the whole files it is about to send (read
    /// after this call) already hold, and returns the version those files cover.
    /// </summary>
    public long BeginStateSnapshot()
    {
        lock (_stateLock)
        {
            _positionUpdates.Clear();
            _producerStateVersion = 0;
            _stateFilesVersion = 0;
            return _stateVersion;
        }
    }

    /// <summary>Replicator's ack reader: the standby applied every position update up to <paramref name="version"/>.</summary>
    public void OnStateApplied(long version)
    {
        lock (_stateLock)
        {
            if (version > _stateApplied)
            {
                Volatile.Write(ref _stateApplied, version);
            }

            while (_stateWaiters.TryPeek(out var w) && w.Version <= _stateApplied)
            {
                _stateWaiters.Dequeue();
                w.Completion.TrySetResult();
            }
        }
    }

    /// <summary>
    /// A work-queue group's acks changed (its state file is shipped whole, at most every 20 ms). Wakes the replicator
    /// only when no change is flagged yet: one that is waits for the end of the replicator's 20 ms spacing, and the
    /// replicator, seeing <see cref="GroupStatePending"/>, sleeps no longer than that.
    /// </summary>
    public void GroupStateChanged()
    {
        if (Interlocked.Exchange(ref _groupStateDirty, 1) == 0)
        {
            Wake?.Invoke();
        }
    }

    /// <summary>Replicator: true once per burst of <see cref="GroupStateChanged"/> calls.</summary>
    public bool TakeGroupStateChanged() => Interlocked.Exchange(ref _groupStateDirty, 0) != 0;

    /// <summary>
    /// Replicator, before it sleeps: a group-state change is flagged and not taken yet. Read after this returns false,
    /// a later change wakes it (<see cref="GroupStateChanged"/> sees the flag clear).
    /// </summary>
    public bool GroupStatePending => Volatile.Read(ref _groupStateDirty) != 0;

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

    /// <summary>Fails everything still held (the node is closing or stepping down).</summary>
    public void FailAll(BrokerErrorCode code, string reason)
    {
        foreach (var t in Snapshot())
        {
            t.FailAll(code, reason);
        }

        lock (_stateLock)
        {
            while (_stateWaiters.TryDequeue(out var w))
            {
                w.Completion.TrySetException(new BrokerException(code, reason));
            }
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

/// <summary>A committed position on its way to the standby.</summary>
internal readonly record struct PositionUpdate(long Version, string Subscription, string Topic, long NextOffset);

/// <summary>A COMMIT (or an INIT_PRODUCER's new epoch, <paramref name="What"/> says which) waiting for the standby to apply its version.</summary>
internal readonly record struct StateWaiter(long Version, TaskCompletionSource Completion, long Since, string What);

/// <summary>One topic's standby positions and the confirmations waiting for them (two FIFOs, one per mode).</summary>
internal sealed class ReplicaAcks(TopicState topic)
{
    private readonly object _lock = new();
    private PendingQueue _received = new(64);
    private PendingQueue _durable = new(64);
    private long _receivedNext;
    private long _durableNext;
    private volatile int _held;
    private volatile int _durableHeld;

    public TopicState Topic { get; } = topic;

    /// <summary>Confirmations waiting (read without the lock: the dispatcher's hint to wake the replicator now).</summary>
    public int HeldCount => _held;

    /// <summary>Of <see cref="HeldCount"/>, those waiting for the standby's durable position (the replicator asks it to flush).</summary>
    public int DurableHeldCount => _durableHeld;

    /// <summary>The standby holds every record below this offset.</summary>
    public long ReceivedNext => Volatile.Read(ref _receivedNext);

    /// <summary>The standby has flushed every record below this offset.</summary>
    public long DurableNext => Volatile.Read(ref _durableNext);

    /// <summary>Confirmations waiting.</summary>
    public int Pending
    {
        get
        {
            lock (_lock)
            {
                return _received.Count + _durable.Count;
            }
        }
    }

    public void Enqueue(AckMode mode, in PendingConfirmation confirmation, long now)
    {
        lock (_lock)
        {
            if (mode == AckMode.StandbyReceived)
            {
                if (confirmation.Offset < _receivedNext)
                {
                    confirmation.Confirm();
                }
                else
                {
                    _received.Enqueue(new Held(confirmation, now));
                }
            }
            else if (confirmation.Offset < _durableNext)
            {
                confirmation.Confirm();
            }
            else
            {
                _durable.Enqueue(new Held(confirmation, now));
            }

            UpdateHeld();
        }
    }

    public void OnAck(long receivedNext, long durableNext, ConfirmBatch batch)
    {
        lock (_lock)
        {
            // A durable record is also received (the standby flushes what it wrote).
            receivedNext = Math.Max(receivedNext, durableNext);
            if (receivedNext > _receivedNext)
            {
                Volatile.Write(ref _receivedNext, receivedNext);
            }

            if (durableNext > _durableNext)
            {
                Volatile.Write(ref _durableNext, durableNext);
            }

            while (_received.TryPeek(out var h) && h.Confirmation.Offset < _receivedNext)
            {
                _received.Dequeue();
                h.Confirmation.Confirm(batch);
            }

            while (_durable.TryPeek(out var h) && h.Confirmation.Offset < _durableNext)
            {
                _durable.Dequeue();
                h.Confirmation.Confirm(batch);
            }

            UpdateHeld();
        }
    }

    /// <summary>
    /// Resets the positions (a new standby connected): received from its head, durable from what it has flushed, which
    /// can be less after a restart of the standby.
    /// </summary>
    public void ResetPositions(long next, long durable)
    {
        lock (_lock)
        {
            Volatile.Write(ref _receivedNext, next);
            Volatile.Write(ref _durableNext, Math.Min(durable, next));
        }
    }

    public int ReleaseAll()
    {
        lock (_lock)
        {
            var n = _received.Count + _durable.Count;
            while (_received.TryPeek(out var h))
            {
                _received.Dequeue();
                h.Confirmation.Confirm();
            }

            while (_durable.TryPeek(out var h))
            {
                _durable.Dequeue();
                h.Confirmation.Confirm();
            }

            UpdateHeld();
            return n;
        }
    }

    public int FailOlderThan(long deadline, TimeSpan timeout)
    {
        var n = 0;
        lock (_lock)
        {
            n += Fail(ref _received, deadline, timeout, "standby-received");
            n += Fail(ref _durable, deadline, timeout, "standby-durable");
            UpdateHeld();
        }

        return n;
    }

    public void FailAll(BrokerErrorCode code, string reason)
    {
        lock (_lock)
        {
            while (_received.TryPeek(out var h))
            {
                _received.Dequeue();
                h.Confirmation.Fail(code, reason);
            }

            while (_durable.TryPeek(out var h))
            {
                _durable.Dequeue();
                h.Confirmation.Fail(code, reason);
            }

            UpdateHeld();
        }
    }

    private void UpdateHeld()
    {
        _durableHeld = _durable.Count;
        _held = _received.Count + _durable.Count;
    }

    private int Fail(ref PendingQueue queue, long deadline, TimeSpan timeout, string mode)
    {
        var n = 0;
        while (queue.TryPeek(out var h) && h.Since < deadline)
        {
            queue.Dequeue();
            h.Confirmation.Fail(
                BrokerErrorCode.NotReplicated,
                $"topic '{Topic.Name}' offset {h.Confirmation.Offset}: written on the primary, but the standby did not acknowledge it within {timeout.TotalMilliseconds:0} ms ({mode}); not confirmed");
            n++;
        }

        return n;
    }

    private readonly record struct Held(PendingConfirmation Confirmation, long Since);

    /// <summary>A growable circular FIFO of value entries: no allocation once grown to the working size.</summary>
    private struct PendingQueue(int capacity)
    {
        private Held[] _items = new Held[capacity];
        private int _head;
        private int _count;

        public readonly int Count => _count;

        public void Enqueue(in Held item)
        {
            if (_count == _items.Length)
            {
                var bigger = new Held[_items.Length * 2];
                for (var i = 0; i < _count; i++)
                {
                    bigger[i] = _items[(_head + i) % _items.Length];
                }

                _items = bigger;
                _head = 0;
            }

            _items[(_head + _count) % _items.Length] = item;
            _count++;
        }

        public readonly bool TryPeek(out Held item)
        {
            if (_count == 0)
            {
                item = default;
                return false;
            }

            item = _items[_head];
            return true;
        }

        public void Dequeue()
        {
            _items[_head] = default;
            _head = (_head + 1) % _items.Length;
            _count--;
        }
    }
}
