namespace FastBroker.Engine;

// Visibility timeouts and delayed nacks: when the next one is due, and returning due deliveries to the queue.
internal sealed partial class WorkQueueState
{
    /// <summary>The earliest time at which a timeout or a delayed nack needs attention, or null when none is pending.</summary>
    public long? NextDueMs()
    {
        lock (_gate)
        {
            TrimSettledDeadlines();
            long? due = null;
            if (_delayed.TryPeek(out _, out var d))
            {
                due = d;
            }

            if (_deadlines.TryPeek(out _, out var t) && (due is null || t < due))
            {
                due = t;
            }

            return due;
        }
    }

    /// <summary>Returns timed-out deliveries and due delayed nacks to the queue now; the count of messages affected.</summary>
    public int ExpireDue(long nowMs)
    {
        lock (_gate)
        {
            return PromoteDue(nowMs);
        }
    }

    /// <summary>
    /// Drops the deadlines at the head of the heap whose delivery is settled (acked, nacked, expired, or redelivered:
    /// another count). Deadlines are made in time order, so when acks come about in delivery order this keeps the heap
    /// at about what is in flight; before, every delivery's deadline stayed until it passed (30 s × the ack rate).
    /// </summary>
    private void TrimSettledDeadlines()
    {
        while (_deadlines.TryPeek(out var key, out _) && !IsInFlight(key.Offset, key.Sequence))
        {
            _deadlines.Dequeue();
        }
    }

    /// <summary>
    /// Keeps only the deadlines of deliveries in flight: for acks out of order, where an old delivery still in flight
    /// keeps <see cref="TrimSettledDeadlines"/> from reaching the settled ones behind it. Called when the heap holds
    /// twice what is in flight (+ 64), so its cost is amortised over at least as many deliveries; allocation-free.
    /// </summary>
    private void RebuildDeadlines()
    {
        _deadlines.Clear();
        foreach (var (offset, f) in _inFlight)
        {
            _deadlines.Enqueue((offset, f.Sequence), f.DeadlineMs);
        }
    }

    private bool IsInFlight(long offset, long sequence) =>
        _inFlight.TryGetValue(offset, out var f) && f.Sequence == sequence;

    private int PromoteDue(long nowMs)
    {
        // Everything due now goes back in offset order: one batch handed at once has one deadline, and the heaps give
        // equal keys back in no particular order, which shuffled a crashed member's prefetch for the next member
        // (WorkQueueRedeliveryOrderTests). A field, reused: no allocation once it has grown.
        var due = _due;
        due.Clear();
        while (_deadlines.TryPeek(out var key, out var deadline) && deadline <= nowMs)
        {
            _deadlines.Dequeue();
            // The same delivery with a later deadline (restarted at its hand-over) has another entry, for that one.
            if (_inFlight.TryGetValue(key.Offset, out var f) && f.Sequence == key.Sequence && f.DeadlineMs <= nowMs)
            {
                // Still out with the same member and the same delivery: its visibility timeout has passed.
                _inFlight.Remove(key.Offset);
                ReleaseCredit(f.MemberId);
                due.Add(new Due(key.Offset, f.DeliveryCount, f.Handed ? DueKind.TimedOut : DueKind.NeverHanded));
            }
        }

        while (_delayed.TryPeek(out var offset, out var dueMs) && dueMs <= nowMs)
        {
            _delayed.Dequeue();
            due.Add(new Due(offset, 0, DueKind.DelayedNack));
        }

        due.Sort();
        foreach (var d in due)
        {
            switch (d.Kind)
            {
                case DueKind.TimedOut:
                    Requeue(d.Offset, d.DeliveryCount, 0, nowMs, "visibility timeout expired");
                    break;
                case DueKind.NeverHanded:
                    // Assigned but never fetched (the member's consumer or connection did not take it in time): nobody
                    // saw it, so it goes to the next member without using up a delivery. Without this a slow member's
                    // unread prefetch was dead-lettered after maxDeliveries timeouts (WorkQueueHandOverTests).
                    Restore(d.Offset, d.DeliveryCount);
                    break;
                default:
                    _redeliver[_priorities.GetValueOrDefault(d.Offset)].Enqueue(d.Offset);
                    break;
            }
        }

        return due.Count;
    }

    private enum DueKind : byte
    {
        TimedOut,
        NeverHanded,
        DelayedNack,
    }

    /// <summary>A delivery whose visibility timeout passed, or a delayed nack that came due, in offset order.</summary>
    private readonly record struct Due(long Offset, int DeliveryCount, DueKind Kind) : IComparable<Due>
    {
        public int CompareTo(Due other) => Offset.CompareTo(other.Offset);
    }
}
