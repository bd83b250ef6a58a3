using System.Buffers;

namespace FastBroker.Protocol;

/// <summary>A parsed HELLO (client → server). Spans and slices are valid only during the handler call.</summary>
public readonly ref struct HelloFrame
{
    /// <summary>Lowest protocol version the client speaks.</summary>
    public ushort MinVersion { get; internal init; }

    /// <summary>Highest protocol version the client speaks.</summary>
    public ushort MaxVersion { get; internal init; }

    /// <summary>Features the client asks for.</summary>
    public ProtocolFeatures Features { get; internal init; }

    /// <summary>Largest frame the client accepts (prefix included); 0 = no preference.</summary>
    public uint MaxInboundFrameSize { get; internal init; }

    /// <summary>UTF-8 client name (may be empty).</summary>
    public ReadOnlySpan<byte> ClientName { get; internal init; }

    /// <summary>UTF-8 client version (may be empty).</summary>
    public ReadOnlySpan<byte> ClientVersion { get; internal init; }

    /// <summary>The auth token bytes (empty = none). Compare in constant time.</summary>
    public ReadOnlySequence<byte> AuthToken { get; internal init; }
}
