using FastBroker.Protocol;

namespace FastBroker.Client;

/// <summary>
/// A failure reported by the server (an ERROR frame or a CONFIRM status) or by the client about its connection:
/// a stable <see cref="ErrorCode"/> from the protocol plus the readable <see cref="Reason"/>.
/// </summary>
/// <remarks>
/// Client-side connection failures use <see cref="Protocol.ErrorCode.Closed"/> (the client was disposed, or it gave
/// up reconnecting: the socket error is the inner exception) and <see cref="Protocol.ErrorCode.Timeout"/> (a request
/// got no reply in time).
/// </remarks>
public sealed class BrokerClientException : Exception
{
    /// <summary>Creates an error with a code and reason.</summary>
    public BrokerClientException(ErrorCode errorCode, string reason)
        : base($"{errorCode} ({(int)errorCode}): {reason}")
    {
        ErrorCode = errorCode;
        Reason = reason;
    }

    /// <summary>Creates an error with a code, a reason and the failure underneath.</summary>
    public BrokerClientException(ErrorCode errorCode, string reason, Exception? inner)
        : base($"{errorCode} ({(int)errorCode}): {reason}", inner)
    {
        ErrorCode = errorCode;
        Reason = reason;
    }

    /// <summary>Creates an error without a code; prefer the coded constructors.</summary>
    public BrokerClientException()
    {
        Reason = string.Empty;
    }

    /// <summary>Creates an error without a code; prefer the coded constructors.</summary>
    public BrokerClientException(string message)
        : base(message)
    {
        Reason = message;
    }

    /// <summary>Creates an error without a code; prefer the coded constructors.</summary>
    public BrokerClientException(string message, Exception innerException)
        : base(message, innerException)
    {
        Reason = message;
    }

    /// <summary>The protocol's error code (docs/protocol.md, section 10).</summary>
    public ErrorCode ErrorCode { get; }

    /// <summary>The server's reason text (or the client's, for connection failures).</summary>
    public string Reason { get; }

    /// <summary>
    /// Set when a confirmable publish failed with <see cref="ErrorCode.NotReplicated"/> on an idempotent connection: the
    /// message is on the primary, and retrying it with <see cref="BrokerClient.RetryAsync"/> (same producer sequence)
    /// cannot store it twice. Null otherwise.
    /// </summary>
    public UnconfirmedPublish? Unconfirmed { get; init; }
}
