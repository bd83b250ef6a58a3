namespace FastBroker.Engine;

// Settling deliveries: hand-over, give-back, ack, expiry, nack, requeue and dead letters, and the ack floor they move.
internal sealed partial class WorkQueueState
{
    /// <summary>
    /// Marks the assignment <paramref name="sequence"/> (<see cref="WorkAssignment.Sequence"/>) of (offset, count) as
    /// handed to <paramref name="memberId"/> (fetched in-process, or written to the connection by the server) and
    /// returns true, while it is still in flight with that member; false when it has gone (timed out, or the member
    /// left): the member must skip it. Only a handed delivery counts as an attempt when its visibility timeout
    /// passes, and when its member leaves only the first one it was handed (<see cref="RemoveMember"/>). The sequence tells a stale assignment from a new
    /// one with the same (member, offset, count): one that timed out unhanded got its count back and may come to the
    /// same member again while the old one still waits in its queue. With <paramref name="nowMs"/> the delivery's visibility
    /// timeout starts again there: the member has the whole timeout from when it got the message, not what was left of
    /// it after the wait in its queue (before, a consumer that fetched a delivery late in that wait saw it taken back,
    /// and its ack refused, long before the timeout had passed since its fetch). Allocation-free in steady state, under
    /// the lock the check took before.
    /// </summary>
    public bool TryHandOver(int memberId, long offset, int deliveryCount, long sequence, long? nowMs = null)
    {
        lock (_gate)
        {
            if (!_inFlight.TryGetValue(offset, out var f) || f.MemberId != memberId || f.DeliveryCount != deliveryCount || f.Sequence != sequence)
            {
                return false;
            }

            if (!f.Handed)
            {
                var deadline = nowMs is { } now ? Math.Max(f.DeadlineMs, now + _visibilityTimeoutMs) : f.DeadlineMs;
                _inFlight[offset] = f with { HandedOrder = _nextHandedOrder++, DeadlineMs = deadline }; // an existing key: overwritten in place, no allocation
                if (deadline != f.DeadlineMs)
                {
                    // The assignment's deadline stays in the heap until it comes up; PromoteDue passes over it then, the
                    // delivery's deadline being this later one, which gets an entry of its own.
                    if (_deadlines.Count >= (2 * _inFlight.Count) + 64)
                    {
                        RebuildDeadlines();
                    }
                    else
                    {
                        _deadlines.Enqueue((offset, sequence), deadline);
                    }
                }
            }

            return true;
        }
    }

    /// <summary>
    /// Takes back a delivery its member was handed but could not pass on (the server could not write it to the
    /// connection): ready again at once with its delivery count restored, so it is no attempt. False when it is not
    /// in flight with that member, or not handed to it yet (a copy waiting in its queue: the fetch would still take it).
    /// </summary>
    public bool GiveBack(int memberId, long offset, int deliveryCount)
    {
        lock (_gate)
        {
            if (!_inFlight.TryGetValue(offset, out var f) || !f.Handed || !TryTakeInFlight(memberId, offset, deliveryCount))
            {
                return false;
            }

            Restore(offset, deliveryCount);
            return true;
        }
    }

    /// <summary>Acknowledges a delivery; only the member holding that exact delivery can.</summary>
    public WorkQueueOutcome Ack(int memberId, long offset, int deliveryCount)
    {
        lock (_gate)
        {
            if (!TryTakeInFlight(memberId, offset, deliveryCount))
            {
                return WorkQueueOutcome.UnknownDelivery;
            }

            _acked++;
            MarkDone(offset);
            return WorkQueueOutcome.Acked;
        }
    }

    /// <summary>Drops a delivery whose message expired before it reached its member: done, but not counted as acked.</summary>
    public bool Expire(int memberId, long offset, int deliveryCount)
    {
        lock (_gate)
        {
            if (!TryTakeInFlight(memberId, offset, deliveryCount))
            {
                return false;
            }

            MarkDone(offset);
            return true;
        }
    }

    /// <summary>
    /// Rejects a delivery. With <paramref name="requeue"/> it is ready again at once or after
    /// <paramref name="delayMs"/>, unless it has used up its deliveries; without, it is dead-lettered now.
    /// </summary>
    public WorkQueueOutcome Nack(int memberId, long offset, int deliveryCount, bool requeue, long delayMs, string? error, long nowMs)
    {
        lock (_gate)
        {
            if (!TryTakeInFlight(memberId, offset, deliveryCount))
            {
                return WorkQueueOutcome.UnknownDelivery;
            }

            if (error is not null)
            {
                _lastErrors[offset] = error;
            }

            if (!requeue)
            {
                DeadLetterNow(offset, deliveryCount, error ?? "rejected without requeue");
                return WorkQueueOutcome.DeadLettered;
            }

            return Requeue(offset, deliveryCount, delayMs, nowMs, error ?? "nacked");
        }
    }

    /// <summary>Takes the next message the group has given up on (the broker publishes it to the dead-letter topic).</summary>
    public bool TryTakeDeadLetter(out DeadLetter deadLetter)
    {
        lock (_gate)
        {
            return _deadLetters.TryDequeue(out deadLetter);
        }
    }

    private bool TryTakeInFlight(int memberId, long offset, int deliveryCount)
    {
        if (!_inFlight.TryGetValue(offset, out var f) || f.MemberId != memberId || f.DeliveryCount != deliveryCount)
        {
            return false;
        }

        _inFlight.Remove(offset);
        ReleaseCredit(memberId);
        TrimSettledDeadlines();
        return true;
    }

    private WorkQueueOutcome Requeue(long offset, int deliveryCount, long delayMs, long nowMs, string reason)
    {
        if (deliveryCount >= _maxDeliveries)
        {
            // What ended the last delivery, and the last NACK's error when that was something else (a timeout, the
            // member leaving): the dead letter's history must not show an earlier attempt's error as the last one.
            var nackError = _lastErrors.GetValueOrDefault(offset);
            DeadLetterNow(offset, deliveryCount, nackError is null || nackError == reason ? reason : $"{reason} (delivery {deliveryCount}); the last nack's error: {nackError}");
            return WorkQueueOutcome.DeadLettered;
        }

        _redelivered++;
        if (delayMs > 0)
        {
            _delayed.Enqueue(offset, nowMs + delayMs);
        }
        else
        {
            _redeliver[_priorities.GetValueOrDefault(offset)].Enqueue(offset);
        }

        return WorkQueueOutcome.Requeued;
    }

    /// <summary>Returns a delivery its member never received to the queue as if it had not been made.</summary>
    private void Restore(long offset, int deliveryCount)
    {
        if (deliveryCount > 1)
        {
            _deliveryCounts[offset] = deliveryCount - 1;
        }
        else
        {
            _deliveryCounts.Remove(offset);
        }

        // With the redeliveries: ahead of fresh messages, so it goes out again before what was read after it.
        _redeliver[_priorities.GetValueOrDefault(offset)].Enqueue(offset);
    }

    /// <summary>
    /// Passes over an offset the group's feed cannot read (a damaged record): never delivered, dead-lettered at once with
    /// 0 deliveries and <paramref name="reason"/>, its place in the order taken as <see cref="Enqueue"/> would.
    /// </summary>
    public void DeadLetterUnread(long offset, string reason)
    {
        lock (_gate)
        {
            EnsureNext(offset);
            _nextOffset = offset + 1;
            DeadLetterNow(offset, 0, reason);
        }
    }

    private void DeadLetterNow(long offset, int deliveryCount, string reason)
    {
        _deadLetters.Enqueue(new DeadLetter(offset, deliveryCount, reason));
        _deadLettered++;
        MarkDone(offset);
    }

    private void MarkDone(long offset)
    {
        _deliveryCounts.Remove(offset);
        _priorities.Remove(offset);
        _lastErrors.Remove(offset);
        if (offset != _floor)
        {
            _doneAboveFloor.Add(offset);
            return;
        }

        _floor++;
        while (_doneAboveFloor.Remove(_floor))
        {
            _floor++;
        }
    }
}
