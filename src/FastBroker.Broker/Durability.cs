namespace FastBroker;

/// <summary>What a producer's confirmation waits for.</summary>
public enum Durability
{
    /// <summary>Confirmed once the broker has taken the message into its input ring (fastest, lost on a crash before it is written).</summary>
    None = 0,

    /// <summary>Confirmed once written to the journal mapping (page cache): survives <c>kill -9</c> of the broker, not power loss.</summary>
    Written = 1,

    /// <summary>Confirmed once flushed to disk by a group commit (msync/fdatasync): survives power loss.</summary>
    Fsynced = 2,
}
