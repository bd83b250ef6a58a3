namespace FastBroker.Protocol;

/// <summary>
/// Header names with a meaning to the broker or the clients (docs/protocol.md, "Reserved headers"). Names that
/// start with <c>fb-</c> are reserved.
/// </summary>
public static class ProtocolHeaders
{
    /// <summary>Prefix of every reserved header name.</summary>
    public static ReadOnlySpan<byte> ReservedPrefix => "fb-"u8;

    /// <summary>Request-reply: the topic the responder publishes its reply to (UTF-8 topic name).</summary>
    public static ReadOnlySpan<byte> ReplyTo => "fb-reply-to"u8;

    /// <summary>Request-reply: opaque bytes the reply carries back unchanged (8 bytes little-endian by convention).</summary>
    public static ReadOnlySpan<byte> CorrelationId => "fb-correlation-id"u8;
}
