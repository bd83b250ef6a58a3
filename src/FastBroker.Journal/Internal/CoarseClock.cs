namespace FastBroker.Journal.Internal;

/// <summary>
/// Unix milliseconds for record timestamps at the cost of <see cref="Environment.TickCount64"/> (~10 ns, a vDSO
/// coarse clock) instead of <see cref="DateTime.UtcNow"/> (~30-40 ns measured here: a fifth of the 100-byte
/// append budget). Re-anchored to the wall clock once a second, so it follows clock adjustments within 1 s.
/// Writer thread only.
/// </summary>
internal struct CoarseClock
{
    private long _anchorTicks;
    private long _anchorUnixMs;

    internal long NowUnixMs()
    {
        var ticks = Environment.TickCount64;
        var elapsed = ticks - _anchorTicks;
        if ((ulong)elapsed >= 1000 || _anchorUnixMs == 0)
        {
            _anchorUnixMs = (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) / TimeSpan.TicksPerMillisecond;
            _anchorTicks = ticks;
            elapsed = 0;
        }

        return _anchorUnixMs + elapsed;
    }
}
