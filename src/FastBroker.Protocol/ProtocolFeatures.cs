namespace FastBroker.Protocol;

/// <summary>Feature bits of HELLO (asked for) and WELCOME (granted: the intersection). Unknown bits are ignored.</summary>
[Flags]
public enum ProtocolFeatures : ulong
{
    /// <summary>No optional feature.</summary>
    None = 0,

    /// <summary>Producer id and sequence deduplicate retried publishes.</summary>
    IdempotentProducer = 1 << 0,

    /// <summary>The server may send DELIVER_BATCH (the client always may send PUBLISH_BATCH).</summary>
    Batching = 1 << 1,

    /// <summary>JOIN_GROUP, ACK and NACK.</summary>
    WorkQueues = 1 << 2,

    /// <summary>SUBSCRIBE header filters.</summary>
    HeaderFilters = 1 << 3,

    /// <summary>ADMIN queries.</summary>
    Admin = 1 << 4,

    /// <summary>
    /// INIT_PRODUCER: a producer (re)starting with an id it used before asks the server where that id's sequence
    /// stands, so its new messages are not taken for retries of the old ones.
    /// </summary>
    InitProducer = 1 << 5,

    /// <summary>
    /// Producer epochs (with <see cref="InitProducer"/>): INIT_PRODUCER carries an epoch, 0 for a new instance (the
    /// server gives it a higher epoch than any before, which fences older instances of the id) or the epoch to resume
    /// after a reconnect; the OK carries the epoch after the next sequence.
    /// </summary>
    ProducerEpoch = 1 << 6,

    /// <summary>
    /// SUBSCRIBE's <c>fallbackKind</c> also applies to <c>startKind</c> Offset: with Earliest, a concrete topic whose head
    /// is below <c>startValue</c> (its offsets went back: a transient topic after a server restart) starts at its
    /// earliest retained message instead of its head. A server that does not grant it starts such a subscription at the
    /// head, so a client resuming a reply inbox there must start it otherwise (the .NET client: at Earliest).
    /// </summary>
    OffsetFallback = 1 << 7,
}
