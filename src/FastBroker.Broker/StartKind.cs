namespace FastBroker;

/// <summary>Kinds of <see cref="StartPosition"/>.</summary>
public enum StartKind
{
    /// <summary>Only new messages.</summary>
    Latest = 0,

    /// <summary>The oldest kept message.</summary>
    Earliest = 1,

    /// <summary>A given offset.</summary>
    Offset = 2,

    /// <summary>A given time.</summary>
    Timestamp = 3,

    /// <summary>The durable subscription's committed position.</summary>
    Committed = 4,
}
