namespace FastBroker.Protocol;

/// <summary>
/// Header names with a meaning to the broker or the clients, as UTF-8 (docs/protocol.md, section 9). Names that start
/// with <c>fb-</c> are reserved for the broker and its clients. <see cref="Expires"/> and <see cref="Producer"/> are the
/// broker's own: it appends them with a binary value, a PUBLISH whose own headers carry either is refused, and so is a
/// SUBSCRIBE filter on either. <see cref="ReplyTo"/> and <see cref="CorrelationId"/> are the publisher's to set and
/// pass unchanged.
/// </summary>
public static class ProtocolHeaders
{
    /// <summary>
    /// <c>fb-</c>: prefix of every reserved header name: the broker's own <see cref="Expires"/> and
    /// <see cref="Producer"/>, the request-reply names, <c>fb-priority</c> (a work-queue priority level) and the
    /// <c>fb-dlq-*</c> history the broker writes on a dead letter. Apart from the broker's own two, a publisher may set
    /// them, the broker stores them unchanged and a SUBSCRIBE filters on them like on any header.
    /// </summary>
    public static ReadOnlySpan<byte> ReservedPrefix => "fb-"u8;

    /// <summary>
    /// <c>fb-reply-to</c>, request-reply: the topic the responder publishes its reply to (a UTF-8 topic name). The .NET
    /// client's <c>RequestAsync</c> sets it to its inbox topic; <c>ReplyAsync</c> publishes to it.
    /// </summary>
    public static ReadOnlySpan<byte> ReplyTo => "fb-reply-to"u8;

    /// <summary>
    /// <c>fb-correlation-id</c>, request-reply: opaque bytes the reply carries back unchanged (by convention 8 bytes, a
    /// little-endian <c>u64</c>, as the .NET client writes it); the requester matches replies by it.
    /// </summary>
    public static ReadOnlySpan<byte> CorrelationId => "fb-correlation-id"u8;

    /// <summary>
    /// <c>fb-expires</c>: appended by the broker when a publish has a TTL, the expiry (8 bytes, little-endian Unix
    /// milliseconds); a subscriber is not delivered a message past it. A PUBLISH whose own headers carry this name is
    /// refused (CONFIRM status <c>InvalidArgument</c>, nothing stored; the .NET client's <c>PublishHeaders</c> throws
    /// <see cref="ArgumentException"/>), and so is a SUBSCRIBE filter on it (<c>InvalidArgument</c>): set a TTL with
    /// <c>ttlMs</c> instead.
    /// </summary>
    public static ReadOnlySpan<byte> Expires => "fb-expires"u8;

    /// <summary>
    /// <c>fb-producer</c>: appended by the broker on an idempotent publish, the producer id, the producer sequence and,
    /// when the connection bound a producer epoch, that epoch (little-endian <c>u64</c>s: 16 or 24 bytes); the
    /// deduplication window is rebuilt from it after a restart. A PUBLISH whose own headers carry this name is refused
    /// (CONFIRM status <c>InvalidArgument</c>, nothing stored; the .NET client's <c>PublishHeaders</c> throws
    /// <see cref="ArgumentException"/>), and so is a SUBSCRIBE filter on it (<c>InvalidArgument</c>): set
    /// <c>producerId</c> and <c>producerSequence</c> instead.
    /// </summary>
    public static ReadOnlySpan<byte> Producer => "fb-producer"u8;
}
