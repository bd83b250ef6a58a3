namespace FastBroker.Engine;

// Producer epochs: starting and resuming instances (INIT_PRODUCER), the fences they set, and what producers.state and producers.epochs keep of them.
internal sealed partial class ProducerRegistry
{
    /// <summary>
    /// How far ahead of this broker's clock a resumed epoch may be when it is above the newest of its id (its pair peer's
    /// clock may run ahead, or this one stepped back): a day.
    /// </summary>
    public const ulong MaxEpochLeadMs = 24 * 60 * 60 * 1000;

    /// <summary>
    /// Any thread (a session answering INIT_PRODUCER): starts (<paramref name="epoch"/> 0: an epoch above every earlier
    /// one, at least <paramref name="now"/>) or resumes an instance of <paramref name="producerId"/>; its epoch fences
    /// publishes with lower ones from then on. Null when resuming an epoch that a newer one replaced.
    /// </summary>
    /// <exception cref="BrokerException"><see cref="BrokerErrorCode.InvalidArgument"/>: a resumed epoch this broker cannot have given (more than <see cref="MaxEpochLeadMs"/> ahead of <paramref name="now"/> and above the newest of the id).</exception>
    public (ulong NextSequence, ulong Epoch)? Init(ulong producerId, ulong epoch, ulong now) => Init(producerId, epoch, now, out _);

    /// <summary>
    /// <see cref="Init(ulong, ulong, ulong)"/>, and whether the newest epoch of the id changed (<paramref name="raised"/>: a
    /// new instance, or a resume above the newest known), which the broker persists before answering.
    /// </summary>
    /// <exception cref="BrokerException"><see cref="BrokerErrorCode.InvalidArgument"/>: an epoch never given, as above.</exception>
    public (ulong NextSequence, ulong Epoch)? Init(ulong producerId, ulong epoch, ulong now, out bool raised)
    {
        raised = false;
        lock (_addLock)
        {
            _producers.TryGetValue(producerId, out var p);
            var newest = NewestEpochLocked(producerId, p);
            if (epoch == 0)
            {
                epoch = Math.Max(newest + 1, now);
            }
            else if (epoch < newest)
            {
                return null;
            }
            else if (epoch > newest && CannotHaveGiven(epoch, now))
            {
                // Never given: every epoch is at most one more than the newest or the Unix ms it was given at. Taken, it
                // would fence every later instance of the id until the expiry, and at ulong.MaxValue newest + 1 wrapped.
                throw new BrokerException(BrokerErrorCode.InvalidArgument, $"producer {producerId:x16}: epoch {epoch} was never given (it is more than a day ahead of this broker's clock and above the newest epoch of the id, {newest})");
            }

            raised = epoch > newest;
            if (p is not null)
            {
                p.Fence = Math.Max(p.Fence, epoch);
                p.Used = Math.Max(p.Used, (long)Math.Min(now, long.MaxValue));
            }
            else
            {
                KeepFenceLocked(producerId, epoch, (long)Math.Min(now, long.MaxValue), (long)Math.Min(now, long.MaxValue));
            }

            return (p is null ? 0 : p.Highest + 1, epoch);
        }
    }

    /// <summary>
    /// Whether <paramref name="epoch"/>, above every epoch known for its id, is more than <see cref="MaxEpochLeadMs"/> ahead
    /// of <paramref name="now"/> (Unix ms): every epoch given is at most one more than the newest or the Unix ms it was given
    /// at. One within the lead may have been given and forgotten (a producer expired, a failover), so it is taken.
    /// </summary>
    private static bool CannotHaveGiven(ulong epoch, ulong now) => epoch - Math.Min(epoch, now) > MaxEpochLeadMs;

    /// <summary>
    /// Under the lock: keeps <paramref name="epoch"/> (or the newer one kept) as the newest of
    /// <paramref name="producerId"/>, an id without a window, last in use at <paramref name="seen"/> (Unix ms; the later
    /// one kept), unless that is longer than the epoch retention before <paramref name="now"/>. Once
    /// <see cref="FencesBeforePrune"/> such ids are kept, those past the retention are dropped
    /// (<see cref="PruneFencesLocked"/>) when a new one comes and a quarter of the retention passed since the last prune,
    /// or twice as many as that prune left are kept: ids that never return do not pile up, and a registry holding many
    /// recent ones does not scan them all for each new one. Each write of the epochs files prunes them too, however few
    /// are kept (<see cref="CaptureEpochs"/>).
    /// </summary>
    private void KeepFenceLocked(ulong producerId, ulong epoch, long seen, long now)
    {
        if (_fences.TryGetValue(producerId, out var kept))
        {
            _fences[producerId] = (Math.Max(kept.Epoch, epoch), Math.Max(kept.Seen, seen));
            return;
        }

        if (PastRetention(seen, now))
        {
            return;
        }

        if (_fences.Count >= _pruneAt || (_fences.Count >= FencesBeforePrune && now >= _nextPruneMs))
        {
            PruneFencesLocked(now);
        }

        _fences[producerId] = (epoch, seen);
    }

    /// <summary>Whether an id last in use at <paramref name="seen"/> is past the epoch retention at <paramref name="now"/> (Unix ms).</summary>
    private bool PastRetention(long seen, long now) => _retentionMs != long.MaxValue && now > seen && now - seen >= _retentionMs;

    /// <summary>
    /// Drops the epochs of ids without a window last in use longer than the epoch retention ago: a dropped one fences no
    /// more. Sets when the next prune may come (<see cref="KeepFenceLocked"/>).
    /// </summary>
    private void PruneFencesLocked(long now)
    {
        if (_retentionMs != long.MaxValue)
        {
            foreach (var (id, kept) in _fences)
            {
                if (PastRetention(kept.Seen, now))
                {
                    _fences.Remove(id); // allowed while enumerating since .NET Core 3.0
                }
            }
        }

        _pruneAt = Math.Max(FencesBeforePrune, 2 * _fences.Count);
        _nextPruneMs = _retentionMs == long.MaxValue ? long.MaxValue : now + Math.Max(1, _retentionMs / 4);
    }

    /// <summary>
    /// Any thread: copies the newest epoch of every id that has one (given by <see cref="Init(ulong, ulong, ulong)"/>,
    /// stored with its records, kept after its producer was forgotten or restored at open), with when the id was last in
    /// use (its newest write or INIT_PRODUCER, Unix ms), into <paramref name="into"/> (grown when it holds too few) and
    /// returns how many: what <c>producers.state</c> and <c>producers.epochs</c> (<see cref="ProducerEpochFile"/>) keep,
    /// so that a restart fences with epochs no record carries yet, or no longer within the rescan. Ids last in use longer
    /// than the epoch retention before <paramref name="now"/> (Unix ms) are left out, as a restart drops them
    /// (<see cref="RestoreEpoch"/>), and those without a window are dropped here too (<see cref="PruneFencesLocked"/>,
    /// whatever their count): so every write of either file, the timer's refresh of <c>producers.epochs</c> included,
    /// forgets them, and the running broker fences with what it wrote, which a restart or a promoted standby reads.
    /// </summary>
    public int CaptureEpochs(ref (ulong Producer, ulong Epoch, long Seen)[] into, long now)
    {
        lock (_addLock)
        {
            if (_retentionMs != long.MaxValue)
            {
                PruneFencesLocked(now);
            }

            var need = _fences.Count + _producers.Count;
            if (into.Length < need)
            {
                into = new (ulong, ulong, long)[Math.Max(need, into.Length * 2)];
            }

            var n = 0;
            foreach (var (id, kept) in _fences)
            {
                into[n++] = (id, kept.Epoch, kept.Seen);
            }

            foreach (var (id, p) in _producers)
            {
                var epoch = Math.Max(p.Fence, p.WindowEpoch);
                var seen = Math.Max(p.LastWrite, p.Used);
                if (epoch != 0 && !PastRetention(seen, now))
                {
                    into[n++] = (id, epoch, seen); // one past it: a producer the sweep has not looked at, nothing published since
                }
            }

            return n;
        }
    }

    /// <summary>
    /// Recovery, after the rescan and the checkpoint's entries: <paramref name="epoch"/> was the newest epoch of
    /// <paramref name="producerId"/>, last in use at <paramref name="seen"/> (Unix ms), when <c>producers.state</c> or
    /// <c>producers.epochs</c> was written (called for each file: the newest epoch and the latest use are kept); lower
    /// epochs are fenced again. One of an id without a window is kept for the epoch retention after
    /// <paramref name="seen"/>, as the running broker keeps it (<see cref="KeepFenceLocked"/>).
    /// </summary>
    public void RestoreEpoch(ulong producerId, ulong epoch, long seen, long now)
    {
        lock (_addLock)
        {
            if (_producers.TryGetValue(producerId, out var p))
            {
                p.Fence = Math.Max(p.Fence, epoch);
                p.Used = Math.Max(p.Used, seen);
            }
            else
            {
                KeepFenceLocked(producerId, epoch, seen, now);
            }
        }
    }

    /// <summary>Any thread: the newest epoch known for <paramref name="producerId"/> (0 = none).</summary>
    public ulong Fence(ulong producerId)
    {
        lock (_addLock)
        {
            return NewestEpochLocked(producerId, _producers.GetValueOrDefault(producerId));
        }
    }

    private ulong NewestEpochLocked(ulong producerId, Producer? p) =>
        Math.Max(_fences.GetValueOrDefault(producerId).Epoch, p is null ? 0 : Math.Max(p.Fence, p.WindowEpoch));
}
