namespace FastBroker.Protocol;

/// <summary>A parsed WELCOME (server → client). Spans are valid only during the handler call.</summary>
public readonly ref struct WelcomeFrame
{
    /// <summary>The protocol version chosen for this connection.</summary>
    public ushort Version { get; internal init; }

    /// <summary>Largest frame the server accepts from this client (prefix included).</summary>
    public uint MaxFrameSize { get; internal init; }

    /// <summary>Features granted (the intersection of asked and supported).</summary>
    public ProtocolFeatures Features { get; internal init; }

    /// <summary>Server-assigned id of this connection (logs, inbox topic names).</summary>
    public ulong ConnectionId { get; internal init; }

    /// <summary>Most subscriptions plus group memberships this connection may hold.</summary>
    public uint MaxSubscriptions { get; internal init; }

    /// <summary>The client sends something (a PING will do) at least this often; the server closes an idle connection after 3×.</summary>
    public uint HeartbeatIntervalMs { get; internal init; }

    /// <summary>UTF-8 server name.</summary>
    public ReadOnlySpan<byte> ServerName { get; internal init; }

    /// <summary>UTF-8 server version.</summary>
    public ReadOnlySpan<byte> ServerVersion { get; internal init; }
}
