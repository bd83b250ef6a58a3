namespace FastBroker.Protocol;

/// <summary>
/// Header names with a meaning to the broker or the clients (docs/protocol.md §9). Names that start with <c>fb-</c>
/// are reserved; <see cref="Expires"/> and <see cref="Producer"/> are the server's own and refused on PUBLISH.
/// </summary>
public static class ProtocolHeaders
{
    /// <summary>Prefix of every reserved header name.</summary>
    public static ReadOnlySpan<byte> ReservedPrefix => "fb-"u8;

    /// <summary>Request-reply: the topic the responder publishes its reply to (UTF-8 topic name).</summary>
    public static ReadOnlySpan<byte> ReplyTo => "fb-reply-to"u8;

    /// <summary>Request-reply: opaque bytes the reply carries back unchanged (8 bytes little-endian by convention).</summary>
    public static ReadOnlySpan<byte> CorrelationId => "fb-correlation-id"u8;

    /// <summary>
    /// Written by the server when a PUBLISH has a TTL: the expiry (8 bytes, little-endian Unix ms). A PUBLISH whose own
    /// headers carry this name is refused with <c>InvalidArgument</c>.
    /// </summary>
    public static ReadOnlySpan<byte> Expires => "fb-expires"u8;

    /// <summary>
    /// Written by the server on an idempotent PUBLISH: producer id then producer sequence (two little-endian u64). A
    /// PUBLISH whose own headers carry this name is refused with <c>InvalidArgument</c>.
    /// </summary>
    public static ReadOnlySpan<byte> Producer => "fb-producer"u8;
}
