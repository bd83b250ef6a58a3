using System.Diagnostics;

namespace FastBroker.Replication;

public sealed partial class WitnessServer
{
    /// <summary>Executes one request against the lease state; <paramref name="close"/> when the answer is an ERROR.</summary>
    private string Execute(in WitnessRequest request, out bool close)
    {
        close = false;
        lock (_gate)
        {
            var now = Stopwatch.GetTimestamp();
            switch (request.Kind)
            {
                case WitnessRequestKind.Acquire:
                    return Acquire(request.NodeId!, request.Epoch, request.TtlMs, request.Force, now, out close);
                case WitnessRequestKind.Release:
                    if (_holder == request.NodeId)
                    {
                        // expiry + margin == now: available to the next ACQUIRE at once (unless the standby is behind).
                        _expiry = Math.Min(_expiry, now - _marginTicks);
                        Log($"witness: {_holder} released the lease at epoch {_epoch}{(_standbyBehind ? " with its standby behind: no other node is granted it unless forced" : "")}");
                    }

                    return WitnessProtocol.Released;
                case WitnessRequestKind.Standby:
                    return RecordStandby(request.NodeId!, request.Epoch, request.Behind, now, out close);
                default:
                    return WitnessProtocol.FormatStatus(_holder, _epoch, _holder is null ? 0 : ToCeilingMs(_expiry - now), _standbyBehind);
            }
        }
    }

    /// <summary>
    /// STANDBY from the holder at its epoch: records (durably, before answering) whether its standby holds everything it
    /// confirmed. Anyone else is denied, as an ACQUIRE would be.
    /// </summary>
    private string RecordStandby(string caller, long callerEpoch, bool behind, long now, out bool close)
    {
        close = false;
        if (_holder != caller || _epoch != callerEpoch)
        {
            if (_holder is null)
            {
                close = true;
                return WitnessProtocol.FormatError($"{caller} does not hold the lease: nobody does");
            }

            return WitnessProtocol.FormatDenied(_holder, _epoch, ToCeilingMs(_expiry + _marginTicks - now), _standbyBehind);
        }

        if (behind != _standbyBehind)
        {
            try
            {
                WitnessStateFile.Save(Options.DataDirectory, _holder, _epoch, behind);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FastBroker.Journal.JournalException)
            {
                Log($"witness: cannot persist {caller}'s standby as {(behind ? "behind" : "in sync")}: {e.Message}");
                close = true;
                return WitnessProtocol.FormatError("cannot persist state");
            }

            _standbyBehind = behind;
            Log(behind
                ? $"witness: {caller} (epoch {_epoch}) reports its standby behind: the lease goes to no other node until it reports it in sync (or a forced promotion)"
                : $"witness: {caller} (epoch {_epoch}) reports its standby in sync");
        }

        return WitnessProtocol.FormatStandby(behind);
    }

    private string Acquire(string caller, long callerEpoch, int requestedTtlMs, bool force, long now, out bool close)
    {
        close = false;
        var ttlMs = Math.Min(requestedTtlMs, _maxTtlMs);
        var ttlTicks = ToTicks(TimeSpan.FromMilliseconds(ttlMs));
        if (_holder == caller)
        {
            // Renewal, also after expiry as long as nobody else took over: the epoch stays, unless the holder asks at a
            // later one. It began that one itself (a primary whose host restarted begins a new epoch at its heads, see
            // ReplicatedNode): the witness records it, on disk before it answers, so that it never grants that number
            // to another node, whose history would then carry it under another leader. An earlier one renews as before.
            if (callerEpoch > _epoch)
            {
                try
                {
                    WitnessStateFile.Save(Options.DataDirectory, caller, callerEpoch, _standbyBehind);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or FastBroker.Journal.JournalException)
                {
                    Log($"witness: cannot persist epoch {callerEpoch} begun by {caller}: {e.Message}");
                    close = true;
                    return WitnessProtocol.FormatError("cannot persist state");
                }

                Log($"witness: {caller} renewed its lease at epoch {callerEpoch}, which it began after epoch {_epoch}: the next holder's epoch is past it");
                _epoch = callerEpoch;
            }
            else if (now >= _expiry)
            {
                Log($"witness: {caller} renewed its expired lease at epoch {_epoch}");
            }

            _expiry = now + ttlTicks;
            return WitnessProtocol.FormatGranted(_epoch, ttlMs, _standbyBehind);
        }

        if (_holder is not null && now < _expiry + _marginTicks)
        {
            if (_lastDenial != (caller, _holder, _epoch))
            {
                // Once per (caller, holder, epoch): a standby asks several times per TTL.
                _lastDenial = (caller, _holder, _epoch);
                Log($"witness: denied {caller} (epoch {callerEpoch}): {_holder} holds epoch {_epoch}");
            }

            return WitnessProtocol.FormatDenied(_holder, _epoch, ToCeilingMs(_expiry + _marginTicks - now), _standbyBehind);
        }

        if (_holder is not null && _standbyBehind && !force)
        {
            // The holder confirmed publishes its standby does not hold (degraded to local): granting the lease to the
            // standby would lose them. The holder may come back and renew; an operator may force it.
            if (_lastDenial != (caller, _holder, _epoch))
            {
                _lastDenial = (caller, _holder, _epoch);
                Log($"witness: denied {caller} (epoch {callerEpoch}): {_holder}'s lease at epoch {_epoch} ran out, but it reported its standby behind");
            }

            return WitnessProtocol.FormatDenied(_holder, _epoch, 0, standbyBehind: true);
        }

        // A new holder: the epoch moves past anything either side has seen, and is on disk before anyone hears of it;
        // past the largest there is none (refused, nothing written: no epoch 2^63 - 1, no wrap to a negative one).
        var seen = Math.Max(_epoch, callerEpoch);
        if (FastBroker.Replication.Internal.NodeState.NoEpochAfter(seen) is { } none)
        {
            if (_lastDenial != (caller, "", seen))
            {
                _lastDenial = (caller, "", seen);
                Log($"witness: refused {caller} (epoch {callerEpoch}) a new epoch: {none}");
            }

            return WitnessProtocol.FormatError(none);
        }

        var epoch = seen + 1;
        try
        {
            WitnessStateFile.Save(Options.DataDirectory, caller, epoch, standbyBehind: false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FastBroker.Journal.JournalException)
        {
            Log($"witness: cannot persist the grant of epoch {epoch} to {caller}: {e.Message}");
            close = true;
            return WitnessProtocol.FormatError("cannot persist state");
        }

        var previous = _holder;
        var forcedPast = _standbyBehind && previous is not null;
        _holder = caller;
        _epoch = epoch;
        _standbyBehind = false; // nothing confirmed in the new epoch yet

        // Counted from after the fsync: the witness's lease outlasts the caller's, which counts from before its send.
        _expiry = Stopwatch.GetTimestamp() + ttlTicks;
        Log($"witness: granted {caller} epoch {epoch}, ttl {ttlMs} ms (previous holder {previous ?? "-"}{(forcedPast ? ", forced: publishes it confirmed while its standby was behind may be lost" : "")})");
        return WitnessProtocol.FormatGranted(epoch, ttlMs);
    }
}
