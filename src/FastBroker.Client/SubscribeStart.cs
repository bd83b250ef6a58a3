using FastBroker.Protocol;

namespace FastBroker.Client;

/// <summary>Where a subscription starts (SUBSCRIBE <c>startKind</c>, <c>startValue</c>, <c>fallbackKind</c>).</summary>
public readonly record struct SubscribeStart
{
    private SubscribeStart(StartKind kind, ulong value, StartKind fallback)
    {
        Kind = kind;
        Value = value;
        Fallback = fallback;
    }

    /// <summary>Only messages published after the subscription is registered.</summary>
    public static SubscribeStart Latest => new(StartKind.Latest, 0, StartKind.Latest);

    /// <summary>The oldest retained message.</summary>
    public static SubscribeStart Earliest => new(StartKind.Earliest, 0, StartKind.Latest);

    /// <summary>The start kind.</summary>
    public StartKind Kind { get; }

    /// <summary>The offset or Unix-nanosecond timestamp (for <see cref="StartKind.Offset"/> and <see cref="StartKind.Timestamp"/>).</summary>
    public ulong Value { get; }

    /// <summary>For <see cref="StartKind.Committed"/>: where to start when nothing is committed yet (Latest or Earliest).</summary>
    public StartKind Fallback { get; }

    /// <summary>The given topic offset (clamped by the server to the retained range).</summary>
    public static SubscribeStart AtOffset(long offset)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        return new(StartKind.Offset, (ulong)offset, StartKind.Latest);
    }

    /// <summary>
    /// The first message at or after <paramref name="time"/>, sent as Unix nanoseconds. Messages are stamped in whole
    /// milliseconds, so the server rounds a time between two up (a message stamped 10 ms is before 10.5 ms), as the
    /// embedded broker's <c>StartPosition.AtTime</c> does.
    /// </summary>
    public static SubscribeStart AtTime(DateTimeOffset time)
    {
        var ns = (time - DateTimeOffset.UnixEpoch).Ticks * 100;
        ArgumentOutOfRangeException.ThrowIfNegative(ns, nameof(time));
        return new(StartKind.Timestamp, (ulong)ns, StartKind.Latest);
    }

    /// <summary>The position committed under the subscription's durable name; <paramref name="fallback"/> when there is none.</summary>
    public static SubscribeStart Committed(StartKind fallback = StartKind.Latest)
    {
        if (fallback is not (StartKind.Latest or StartKind.Earliest))
        {
            throw new ArgumentOutOfRangeException(nameof(fallback), fallback, "The fallback is Latest or Earliest.");
        }

        return new(StartKind.Committed, 0, fallback);
    }

    /// <inheritdoc />
    public override string ToString() => Kind switch
    {
        StartKind.Offset => $"Offset {Value}",
        StartKind.Timestamp => $"Timestamp {Value} ns",
        StartKind.Committed => $"Committed (else {Fallback})",
        _ => Kind.ToString(),
    };
}
