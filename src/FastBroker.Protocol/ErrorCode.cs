namespace FastBroker.Protocol;

/// <summary>
/// The u16 error code of ERROR frames and CONFIRM ranges. 1–99 are application codes (1–16 the same values as
/// <c>FastBroker.BrokerErrorCode</c>; <see cref="Internal"/>, 17, is the server's own); 100 and up are protocol codes.
/// A receiver treats a code it does not know as an error of the request it answers.
/// </summary>
public enum ErrorCode : ushort
{
    /// <summary>No error (a CONFIRM range with this status was stored).</summary>
    None = 0,

    /// <summary>A topic, pattern, group or durable name breaks the naming rules.</summary>
    InvalidName = 1,

    /// <summary>The topic does not exist and auto-creation is off.</summary>
    UnknownTopic = 2,

    /// <summary>The message is larger than the topic's maximum.</summary>
    MessageTooLarge = 3,

    /// <summary>The topic exists with other settings than the ones asked for.</summary>
    TopicConflict = 4,

    /// <summary>The journal could not take the message; nothing was acknowledged.</summary>
    StorageFull = 5,

    /// <summary>The broker is shutting down or already closed.</summary>
    Closed = 6,

    /// <summary>The request waited longer than it was allowed to.</summary>
    Timeout = 7,

    /// <summary>An argument is out of range (prefetch, TTL, delay, start position…).</summary>
    InvalidArgument = 8,

    /// <summary>The delivery, member or group is not known.</summary>
    UnknownDelivery = 9,

    /// <summary>
    /// Storage failed for a reason other than space: an I/O error writing or syncing, an I/O error of the device (EIO),
    /// or a file damaged (e.g. a durable name's position file or a group's state file that is not one) or not allowed,
    /// which stays so until an operator acts (not retried); the reason names the file. A shortage that passes by itself is <see cref="ResourceExhausted"/>.
    /// </summary>
    StorageError = 10,

    /// <summary>Written on the primary, but the hot standby did not acknowledge it in time (standby ack modes): not confirmed.</summary>
    NotReplicated = 11,

    /// <summary>This node is not the primary of its failover pair (a standby, or a deposed primary): use the other endpoint.</summary>
    NotPrimary = 12,

    /// <summary>
    /// The producer id was taken over: a newer instance started with it (INIT_PRODUCER with a new epoch), so this
    /// connection's publishes with the id are refused, never stored. Not retryable: the old instance must stop.
    /// </summary>
    ProducerFenced = 13,

    /// <summary>
    /// SUBSCRIBE names a durable name that another open subscription uses (on any connection): one consumer per durable
    /// name. Available again once that subscription ends (UNSUBSCRIBE, or its connection closes).
    /// </summary>
    DurableNameInUse = 14,

    /// <summary>
    /// The server could not do it now for want of a system resource that comes back by itself (descriptors, memory, disk
    /// space, a lock held elsewhere); nothing was changed, and the same request may succeed later. The reason names the
    /// file and what ran short. A file that is damaged or refused as it is, or that the device cannot read or write
    /// (EIO), answers <see cref="StorageError"/> instead.
    /// </summary>
    ResourceExhausted = 15,

    /// <summary>
    /// The subscription reached a damaged record of its topic (its bytes changed on disk after they were written) and
    /// was ended with it (SUBSCRIPTION_ENDED); the reason names the topic, the offset and the segment file. The record is
    /// never delivered; a new subscription started at the next offset reads the records after it. Not retryable.
    /// </summary>
    DamagedRecord = 16,

    /// <summary>
    /// The server failed unexpectedly handling the request (an exception it has no code for: a bug to report, with the
    /// reason, which names the failure, and the server's log line). Nothing is wrong with the request as far as the
    /// server can tell, so it may be retried; the .NET client does not retry it by itself (a bug tends to fail the same
    /// way again, and retrying in a loop would hide it). As the code of an ERROR with <c>CLOSE</c> and request id 0, the
    /// server failed handling a frame and closes the connection.
    /// </summary>
    Internal = 17,

    /// <summary>The frame breaks the framing or field rules; the reason says which rule.</summary>
    MalformedFrame = 100,

    /// <summary>The length field announces a frame larger than the receiver's maximum frame size.</summary>
    FrameTooLarge = 101,

    /// <summary>No protocol version in the client's range is supported by the server.</summary>
    UnsupportedVersion = 102,

    /// <summary>The auth token is missing or not accepted.</summary>
    AuthenticationFailed = 103,

    /// <summary>The authenticated client may not do this (e.g. publish to this topic).</summary>
    Forbidden = 104,

    /// <summary>A frame that is not valid now or in this direction (e.g. PUBLISH before HELLO, a second HELLO, DELIVER sent by a client).</summary>
    UnexpectedFrame = 105,

    /// <summary>The connection has as many subscriptions and group memberships as the server allows.</summary>
    TooManySubscriptions = 106,

    /// <summary>The server has as many connections as it allows.</summary>
    TooManyConnections = 107,

    /// <summary>Nothing was received for longer than the idle timeout.</summary>
    IdleTimeout = 108,

    /// <summary>CREDIT, COMMIT, ACK, NACK or UNSUBSCRIBE names a subscription id that is not open.</summary>
    UnknownSubscription = 109,

    /// <summary>SUBSCRIBE or JOIN_GROUP uses a subscription id that is already open on this connection.</summary>
    SubscriptionIdInUse = 110,
}
