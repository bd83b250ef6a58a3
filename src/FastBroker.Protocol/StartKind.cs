namespace FastBroker.Protocol;

/// <summary>Where a subscription starts (SUBSCRIBE <c>startKind</c> and <c>fallbackKind</c> bytes).</summary>
public enum StartKind : byte
{
    /// <summary>Only messages published after the subscription is registered.</summary>
    Latest = 0,

    /// <summary>The oldest retained message.</summary>
    Earliest = 1,

    /// <summary>The topic offset in <c>startValue</c> (clamped to the retained range).</summary>
    Offset = 2,

    /// <summary>The first message with a timestamp at or after <c>startValue</c> (Unix nanoseconds).</summary>
    Timestamp = 3,

    /// <summary>The committed position of the durable name; without one, the <c>fallbackKind</c>.</summary>
    Committed = 4,
}
