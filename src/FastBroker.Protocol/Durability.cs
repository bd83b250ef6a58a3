namespace FastBroker.Protocol;

/// <summary>What a publish confirmation waits for (PUBLISH and PUBLISH_BATCH <c>durability</c> byte).</summary>
public enum Durability : byte
{
    /// <summary>The topic's configured durability.</summary>
    TopicDefault = 0,

    /// <summary>Confirm once the message has its offset (sequenced, not yet written).</summary>
    None = 1,

    /// <summary>Confirm once written to the journal (OS page cache): survives a broker crash, not a power loss.</summary>
    Written = 2,

    /// <summary>Confirm once fsync'd locally (group commit).</summary>
    Fsynced = 3,

    /// <summary>Ack mode standby-durable: confirm once written locally and fsync'd on the hot standby.</summary>
    StandbyDurable = 4,

    /// <summary>Ack mode standby-received: confirm once written locally and received by the hot standby.</summary>
    StandbyReceived = 5,
}
