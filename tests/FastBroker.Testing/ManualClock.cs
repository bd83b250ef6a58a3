namespace FastBroker.Testing;

/// <summary>A clock that moves only when told: for rate limits and intervals, without waiting for real time.</summary>
public sealed class ManualClock : TimeProvider
{
    private long _ticks = 1_000_000;

    /// <inheritdoc/>
    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    /// <inheritdoc/>
    public override long GetTimestamp() => Interlocked.Read(ref _ticks);

    /// <summary>Moves the clock on by <paramref name="by"/>.</summary>
    public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
}
