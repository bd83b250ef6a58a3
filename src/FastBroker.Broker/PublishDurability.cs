namespace FastBroker;

/// <summary>What a publish's confirmation waits for (the values are the wire protocol's <c>durability</c> byte).</summary>
public enum PublishDurability : byte
{
    /// <summary>As the topic is configured (<see cref="TopicOptions.Durability"/>).</summary>
    TopicDefault = 0,

    /// <summary>Sequenced (the message has its offset). The broker confirms after the journaler has passed it, so in practice this equals <see cref="Written"/>.</summary>
    None = 1,

    /// <summary>Written to the journal (OS page cache): survives a broker crash, not a machine crash.</summary>
    Written = 2,

    /// <summary>Flushed to disk by a group commit. Only on topics configured <see cref="Durability.Fsynced"/> (others refuse it with <see cref="BrokerErrorCode.InvalidArgument"/>).</summary>
    Fsynced = 3,

    /// <summary>
    /// Ack mode <c>standby-durable</c>: written locally (durable per the topic) and flushed to disk on the hot standby.
    /// Refused (<see cref="BrokerErrorCode.InvalidArgument"/>) on a broker that does not run as a failover pair.
    /// </summary>
    StandbyDurable = 4,

    /// <summary>
    /// Ack mode <c>standby-received</c>: written locally and received (written to its page cache) by the hot standby.
    /// Refused on a broker that does not run as a failover pair.
    /// </summary>
    StandbyReceived = 5,
}
