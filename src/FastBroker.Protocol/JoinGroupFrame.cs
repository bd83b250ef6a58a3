namespace FastBroker.Protocol;

/// <summary>A parsed JOIN_GROUP (client → server). Spans are valid only during the handler call.</summary>
public readonly ref struct JoinGroupFrame
{
    /// <summary>Client-chosen id for this membership (non-zero); DELIVER frames carry it, UNSUBSCRIBE leaves the group.</summary>
    public uint SubscriptionId { get; internal init; }

    /// <summary>Most unacknowledged deliveries this member holds at once (≥ 1).</summary>
    public uint Prefetch { get; internal init; }

    /// <summary>Redeliver an unacknowledged message after this long; 0 = the group's default.</summary>
    public uint VisibilityTimeoutMs { get; internal init; }

    /// <summary>Dead-letter after this many deliveries; 0 = the group's default.</summary>
    public ushort MaxDeliveries { get; internal init; }

    /// <summary>UTF-8 group name (non-empty).</summary>
    public ReadOnlySpan<byte> Group { get; internal init; }

    /// <summary>UTF-8 topic name (non-empty).</summary>
    public ReadOnlySpan<byte> Topic { get; internal init; }
}
