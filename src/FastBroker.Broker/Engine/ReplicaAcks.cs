namespace FastBroker.Engine;

/// <summary>
/// One topic's standby positions and the confirmations waiting for them (two FIFOs, one per mode), and, with a consumer
/// visibility other than local, the topic's <see cref="TopicState.VisibleEnd"/> that follows them. What an ACK or a
/// degrade releases is released only while <paramref name="gate"/> may confirm (<see cref="ReplicationGate.MayConfirm"/>,
/// read once per release): a lease that ran out while the confirmations waited withholds them instead.
/// </summary>
internal sealed class ReplicaAcks(TopicState topic, ReplicationGate gate)
{
    private readonly object _lock = new();
    private PendingQueue _received = new(64);
    private PendingQueue _durable = new(64);
    private long _receivedNext;
    private long _durableNext;
    private volatile int _held;
    private volatile int _durableHeld;
    private (BrokerErrorCode Code, string Reason)? _failure; // under _lock: FailAll's, for every confirmation after it

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
            if (_failure is { } failure)
            {
                confirmation.Fail(failure.Code, failure.Reason);
            }
            else if (mode == AckMode.StandbyReceived)
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

            var due = (_received.TryPeek(out var r) && r.Confirmation.Offset < _receivedNext) || (_durable.TryPeek(out var d) && d.Confirmation.Offset < _durableNext);
            if (due && !gate.MayConfirm)
            {
                // Deposed while they waited for this ACK (the lease ran out, or a newer primary exists): withheld.
                Withhold(ref _received, _receivedNext);
                Withhold(ref _durable, _durableNext);
            }
            else if (due)
            {
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
            }

            UpdateHeld();
            if (UpdateVisible())
            {
                batch.NoteVisible(Topic); // its readers are woken when the frame is done, after its confirmations
            }
        }
    }

    /// <summary>
    /// Sets the topic's consumer-visible end from the gate's state and these positions again (the standby attached or
    /// left, degrading was allowed or withdrawn) and wakes its readers when it rose. Outside this object's lock.
    /// </summary>
    public void RefreshVisible()
    {
        bool raised;
        lock (_lock)
        {
            raised = UpdateVisible();
        }

        if (raised)
        {
            Topic.WakeReaders();
        }
    }

    /// <summary>
    /// Under the lock: the topic's <see cref="TopicState.VisibleEnd"/> as the gate's consumer visibility says: the
    /// standby's received or durable position while it gates (a standby confirms, or degrading is not allowed), no bound
    /// while it degrades to local. True when it rose.
    /// </summary>
    private bool UpdateVisible()
    {
        var visibility = gate.ConsumerVisibility;
        if (visibility == AckMode.Local || !Topic.Persistent)
        {
            return false;
        }

        var end = !gate.VisibilityGated ? long.MaxValue : visibility == AckMode.StandbyReceived ? _receivedNext : _durableNext;
        return Topic.SetVisibleEnd(end);
    }

    /// <summary>
    /// Resets the positions (a new standby connected): received from its head, durable from what it has flushed, which
    /// can be less after a restart of the standby.
    /// </summary>
    public void ResetPositions(long next, long durable)
    {
        bool raised;
        lock (_lock)
        {
            Volatile.Write(ref _receivedNext, next);
            Volatile.Write(ref _durableNext, Math.Min(durable, next));
            raised = UpdateVisible();
        }

        if (raised)
        {
            Topic.WakeReaders();
        }
    }

    /// <summary>
    /// Confirms every held confirmation (degraded to local) and returns how many; withholds them instead, and returns 0,
    /// once the gate may no longer confirm.
    /// </summary>
    public int ReleaseAll()
    {
        lock (_lock)
        {
            var n = _received.Count + _durable.Count;
            if (n > 0 && !gate.MayConfirm)
            {
                Withhold(ref _received, long.MaxValue);
                Withhold(ref _durable, long.MaxValue);
                UpdateHeld();
                return 0;
            }

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

    /// <summary>Fails every confirmation held, and every one enqueued from now on (the gate's end).</summary>
    public void FailAll(BrokerErrorCode code, string reason)
    {
        lock (_lock)
        {
            _failure ??= (code, reason);
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

    /// <summary>Hands the gate every confirmation of <paramref name="queue"/> below <paramref name="below"/> to withhold.</summary>
    private void Withhold(ref PendingQueue queue, long below)
    {
        while (queue.TryPeek(out var h) && h.Confirmation.Offset < below)
        {
            queue.Dequeue();
            gate.Withhold(h.Confirmation);
        }
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
