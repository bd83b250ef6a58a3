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
            }
            else
            {
                if (_fences.Count >= FencesBeforePrune && expiryMs != long.MaxValue && !_fences.ContainsKey(producerId))
                {
                    PruneFencesLocked(now);
                }

                _fences[producerId] = epoch;
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
    /// Drops the epochs of instances that never wrote and started longer than the expiry ago (an epoch is at least the
    /// Unix ms of its start): like producers, such ids do not pile up. A dropped one is fenced no more, as after a restart.
    /// </summary>
    private void PruneFencesLocked(ulong now)
    {
        foreach (var (id, epoch) in _fences)
        {
            if (now > epoch && now - epoch >= (ulong)expiryMs)
            {
                _fences.Remove(id); // allowed while enumerating since .NET Core 3.0
            }
        }
    }

    /// <summary>
    /// Any thread: copies the newest epoch of every id that has one (given by <see cref="Init(ulong, ulong, ulong)"/> or stored with its records)
    /// into <paramref name="into"/> (grown when it holds too few) and returns how many: what <c>producers.state</c> and
    /// <c>producers.epochs</c> (<see cref="ProducerEpochFile"/>) keep, so that a restart fences with epochs no record carries yet.
    /// </summary>
    public int CaptureEpochs(ref (ulong Producer, ulong Epoch)[] into)
    {
        lock (_addLock)
        {
            var need = _fences.Count + _producers.Count;
            if (into.Length < need)
            {
                into = new (ulong, ulong)[Math.Max(need, into.Length * 2)];
            }

            var n = 0;
            foreach (var (id, epoch) in _fences)
            {
                into[n++] = (id, epoch);
            }

            foreach (var (id, p) in _producers)
            {
                var epoch = Math.Max(p.Fence, p.WindowEpoch);
                if (epoch != 0)
                {
                    into[n++] = (id, epoch);
                }
            }

            return n;
        }
    }

    /// <summary>
    /// Recovery, after the rescan and the checkpoint's entries: <paramref name="epoch"/> was the newest epoch of
    /// <paramref name="producerId"/> when <c>producers.state</c> or <c>producers.epochs</c> was written (called for each
    /// file: the newest is kept); lower ones are fenced again. One of an id
    /// this broker no longer knows is dropped when it started longer than the expiry ago (as <see cref="PruneFencesLocked"/> would).
    /// </summary>
    public void RestoreEpoch(ulong producerId, ulong epoch, ulong now)
    {
        lock (_addLock)
        {
            if (_producers.TryGetValue(producerId, out var p))
            {
                p.Fence = Math.Max(p.Fence, epoch);
            }
            else if (expiryMs == long.MaxValue || now <= epoch || now - epoch < (ulong)expiryMs)
            {
                _fences[producerId] = Math.Max(_fences.GetValueOrDefault(producerId), epoch);
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
        Math.Max(_fences.GetValueOrDefault(producerId), p is null ? 0 : Math.Max(p.Fence, p.WindowEpoch));
}
