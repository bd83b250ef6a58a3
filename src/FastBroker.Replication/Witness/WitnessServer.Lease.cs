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
                    return Acquire(request.NodeId!, request.Epoch, request.TtlMs, now, out close);
                case WitnessRequestKind.Release:
                    if (_holder == request.NodeId)
                    {
                        // expiry + margin == now: available to the next ACQUIRE at once.
                        _expiry = Math.Min(_expiry, now - _marginTicks);
                        Log($"witness: {_holder} released the lease at epoch {_epoch}");
                    }

                    return WitnessProtocol.Released;
                default:
                    return WitnessProtocol.FormatStatus(_holder, _epoch, _holder is null ? 0 : ToCeilingMs(_expiry - now));
            }
        }
    }

    private string Acquire(string caller, long callerEpoch, int requestedTtlMs, long now, out bool close)
    {
        close = false;
        var ttlMs = Math.Min(requestedTtlMs, _maxTtlMs);
        var ttlTicks = ToTicks(TimeSpan.FromMilliseconds(ttlMs));
        if (_holder == caller)
        {
            // Renewal, also after expiry as long as nobody else took over: the epoch stays.
            if (now >= _expiry)
            {
                Log($"witness: {caller} renewed its expired lease at epoch {_epoch}");
            }

            _expiry = now + ttlTicks;
            return WitnessProtocol.FormatGranted(_epoch, ttlMs);
        }

        if (_holder is not null && now < _expiry + _marginTicks)
        {
            if (_lastDenial != (caller, _holder, _epoch))
            {
                // Once per (caller, holder, epoch): a standby asks several times per TTL.
                _lastDenial = (caller, _holder, _epoch);
                Log($"witness: denied {caller} (epoch {callerEpoch}): {_holder} holds epoch {_epoch}");
            }

            return WitnessProtocol.FormatDenied(_holder, _epoch, ToCeilingMs(_expiry + _marginTicks - now));
        }

        // A new holder: the epoch moves past anything either side has seen, and is on disk before anyone hears of it.
        var epoch = Math.Max(_epoch, callerEpoch) + 1;
        try
        {
            WitnessStateFile.Save(Options.DataDirectory, caller, epoch);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FastBroker.Journal.JournalException)
        {
            Log($"witness: cannot persist the grant of epoch {epoch} to {caller}: {e.Message}");
            close = true;
            return WitnessProtocol.FormatError("cannot persist state");
        }

        var previous = _holder;
        _holder = caller;
        _epoch = epoch;

        // Counted from after the fsync: the witness's lease outlasts the caller's, which counts from before its send.
        _expiry = Stopwatch.GetTimestamp() + ttlTicks;
        Log($"witness: granted {caller} epoch {epoch}, ttl {ttlMs} ms (previous holder {previous ?? "-"})");
        return WitnessProtocol.FormatGranted(epoch, ttlMs);
    }
}
