namespace FastBroker.Testing;

/// <summary>
/// A clock that moves only when told: for rate limits and intervals (its timestamps) and for wall-clock ages (its
/// <see cref="GetUtcNow"/>, which starts at the real time when the clock is made), without waiting for real time.
/// </summary>
public sealed class ManualClock : TimeProvider
{
    private const long StartTicks = 1_000_000;

    private readonly DateTimeOffset _start = DateTimeOffset.UtcNow;
    private long _ticks = StartTicks;

    /// <inheritdoc/>
    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    /// <inheritdoc/>
    public override long GetTimestamp() => Interlocked.Read(ref _ticks);

    /// <inheritdoc/>
    public override DateTimeOffset GetUtcNow() => _start + TimeSpan.FromTicks(Interlocked.Read(ref _ticks) - StartTicks);

    /// <summary>Moves the clock on by <paramref name="by"/>.</summary>
    public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
}
