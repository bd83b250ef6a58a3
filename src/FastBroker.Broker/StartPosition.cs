using FastBroker.Journal;

namespace FastBroker;

/// <summary>Where a subscription starts reading each topic it matches.</summary>
public readonly record struct StartPosition
{
    private StartPosition(StartKind kind, long value)
    {
        Kind = kind;
        Value = value;
    }

    /// <summary>Which kind of start this is.</summary>
    public StartKind Kind { get; }

    /// <summary>The offset (for <see cref="StartKind.Offset"/>) or Unix milliseconds (for <see cref="StartKind.Timestamp"/>).</summary>
    public long Value { get; }

    /// <summary>The oldest message still kept.</summary>
    public static StartPosition Earliest => new(StartKind.Earliest, 0);

    /// <summary>Only messages published after the subscription starts. The default.</summary>
    public static StartPosition Latest => new(StartKind.Latest, 0);

    /// <summary>The durable subscription's committed position; <see cref="Earliest"/> if it has none yet.</summary>
    public static StartPosition Committed => new(StartKind.Committed, 0);

    /// <summary>
    /// From a topic offset. Past the head: from the head. Below what is kept (retention deleted it, or a transient
    /// topic's ring overwrote it): from the first message kept, with the ones between counted in
    /// <see cref="Subscription.Missed"/> by the first read, as for a committed position.
    /// </summary>
    public static StartPosition AtOffset(long offset)
    {
        if (offset < 0)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, "a start offset cannot be negative");
        }

        return new(StartKind.Offset, offset);
    }

    /// <summary>
    /// From the first message stamped at or after <paramref name="time"/> among those stored when the subscription
    /// starts (the head if none is); from there every message is delivered, also one stamped earlier by a wall clock
    /// that stepped back. A topic created later (a wildcard pattern) is read from its beginning.
    /// </summary>
    /// <remarks>
    /// Stamps are whole Unix milliseconds, so a time between two is rounded <b>up</b>: a message stamped 10 ms is before
    /// 10.5 ms, and the first at or after 10.5 ms is the first at or after 11 ms. The server rounds a SUBSCRIBE's
    /// nanosecond <c>startValue</c> the same way, so a time start means the same embedded and through a client.
    /// </remarks>
    public static StartPosition AtTime(DateTimeOffset time) => new(StartKind.Timestamp, ReadStart.CeilingMilliseconds(time));

    /// <inheritdoc />
    public override string ToString() => Kind switch
    {
        StartKind.Offset => $"offset {Value}",
        StartKind.Timestamp => $"time {DateTimeOffset.FromUnixTimeMilliseconds(Value):O}",
        _ => Kind.ToString().ToLowerInvariant(),
    };
}
