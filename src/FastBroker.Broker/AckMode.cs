namespace FastBroker;

/// <summary>
/// What a producer confirmation waits for on a failover pair, beyond the primary's own durability
/// (<see cref="TopicOptions.Durability"/>). On a single broker only <see cref="Local"/> exists.
/// </summary>
public enum AckMode
{
    /// <summary>The primary's own durability only: fastest; a failover may lose what the standby had not yet received.</summary>
    Local = 0,

    /// <summary>Also received by the hot standby (written to its page cache): survives the primary's death.</summary>
    StandbyReceived = 1,

    /// <summary>Also flushed to disk on the hot standby: survives the primary's death and the standby's power loss.</summary>
    StandbyDurable = 2,
}
