namespace FastBroker;

/// <summary>
/// Why the broker refused something. The numeric values are stable: the wire protocol carries them in error
/// frames, so a client in another language can switch on them. 17 is taken on the wire by the server's own code for a
/// failure it has no code for (<c>FastBroker.Protocol.ErrorCode.Internal</c>): a new code here takes the next free value.
/// </summary>
public enum BrokerErrorCode
{
    /// <summary>No error.</summary>
    None = 0,

    /// <summary>A topic, group or subscription name breaks the naming rules.</summary>
    InvalidName = 1,

    /// <summary>The topic does not exist and auto-creation is off.</summary>
    UnknownTopic = 2,

    /// <summary>The message is larger than the topic's maximum.</summary>
    MessageTooLarge = 3,

    /// <summary>The topic exists with other settings than the ones asked for.</summary>
    TopicConflict = 4,

    /// <summary>The journal could not take the message (disk full, segment not creatable); nothing was acknowledged.</summary>
    StorageFull = 5,

    /// <summary>The broker is shutting down or already closed.</summary>
    Closed = 6,

    /// <summary>The request waited longer than it was allowed to.</summary>
    Timeout = 7,

    /// <summary>An argument is out of range (prefetch, TTL, delay, start position…).</summary>
    InvalidArgument = 8,

    /// <summary>The operation refers to a delivery, member or group that is not known.</summary>
    UnknownDelivery = 9,

    /// <summary>
    /// Storage failed for a reason other than space: an I/O error writing or syncing, an I/O error of the device (EIO:
    /// it does not pass by itself), corruption found on read, a state file that is not one (damaged or foreign) or not
    /// allowed; the message names the file. Opening a subscription's or group's file, a topic's journal or its new
    /// segment that the broker could not do now for want of a resource is <see cref="ResourceExhausted"/>.
    /// </summary>
    StorageError = 10,

    /// <summary>
    /// A publish in a standby ack mode was written locally but the hot standby did not acknowledge it within the
    /// configured timeout (standby gone or too slow): it is not confirmed in the mode asked for. A retry with the
    /// same idempotent producer sequence is deduplicated.
    /// </summary>
    NotReplicated = 11,

    /// <summary>This node is not (or no longer) the primary of its failover pair: publish to the other node.</summary>
    NotPrimary = 12,

    /// <summary>
    /// The idempotent producer id was taken over by a newer instance (<see cref="Broker.InitProducer"/> gave it a higher
    /// epoch): a publish carrying an older epoch is refused, never stored. Not retryable.
    /// </summary>
    ProducerFenced = 13,

    /// <summary>
    /// The durable name is in use by another open subscription (one consumer per durable name): available again once
    /// that one is disposed, or, over TCP, once its connection is closed.
    /// </summary>
    DurableNameInUse = 14,

    /// <summary>
    /// The broker could not do it now for want of a system resource that comes back by itself: out of descriptors
    /// (EMFILE/ENFILE), out of memory (ENOMEM, e.g. mapping a file), out of disk space creating a file
    /// (ENOSPC/EDQUOT) or a lock held elsewhere (EAGAIN). Nothing was changed; the same call may succeed later. The
    /// message names the file and what ran short. An I/O error of the device (EIO) is <see cref="StorageError"/>.
    /// </summary>
    ResourceExhausted = 15,

    /// <summary>
    /// A subscription reached a record of its topic whose bytes changed on disk after they were written (a CRC32C
    /// mismatch in a sealed segment the broker's open trusted): it is never delivered. The message names the topic, the
    /// offset, the segment file and how to go on: a subscription started at the next offset reads the records after it
    /// (a work-queue group dead-letters it instead). Not retryable: the same record fails the same way until the journal
    /// is repaired or the segment restored.
    /// </summary>
    DamagedRecord = 16,
}
