using System.Buffers;
using FastBroker.Protocol.Internal;

namespace FastBroker.Protocol;

/// <summary>A parsed ERROR (server → client). Slices are valid only during the handler call.</summary>
public readonly ref struct ErrorFrame
{
    /// <summary>The error code.</summary>
    public ErrorCode Code { get; internal init; }

    /// <summary>The subscription concerned, or 0.</summary>
    public uint SubscriptionId { get; internal init; }

    /// <summary>The server closes the connection after this frame.</summary>
    public bool CloseConnection { get; internal init; }

    /// <summary>The subscription <see cref="SubscriptionId"/> has ended.</summary>
    public bool SubscriptionEnded { get; internal init; }

    /// <summary>UTF-8 readable reason.</summary>
    public ReadOnlySequence<byte> Reason { get; internal init; }

    /// <summary>The reason as a string (allocates: for the error path).</summary>
    public string GetReasonString() => Utf8Validation.ToString(Reason);
}
