namespace FastBroker.Protocol;

/// <summary>A parsed SUBSCRIBE (client → server). Spans and slices are valid only during the handler call.</summary>
public readonly ref struct SubscribeFrame
{
    /// <summary>Client-chosen id (non-zero, unique among the connection's open subscriptions); DELIVER frames carry it.</summary>
    public uint SubscriptionId { get; internal init; }

    /// <summary>Messages the server may deliver before the next CREDIT (0 = paused).</summary>
    public uint InitialCredit { get; internal init; }

    /// <summary>Where to start.</summary>
    public StartKind Start { get; internal init; }

    /// <summary>With <see cref="StartKind.Committed"/>: where to start when nothing is committed yet (Latest or Earliest).</summary>
    public StartKind Fallback { get; internal init; }

    /// <summary>The offset (<see cref="StartKind.Offset"/>) or Unix-nanosecond timestamp (<see cref="StartKind.Timestamp"/>).</summary>
    public ulong StartValue { get; internal init; }

    /// <summary>UTF-8 topic pattern (non-empty): '.'-separated tokens, '*' one token, a final '&gt;' the rest.</summary>
    public ReadOnlySpan<byte> Pattern { get; internal init; }

    /// <summary>UTF-8 durable name; empty for a non-durable subscription.</summary>
    public ReadOnlySpan<byte> DurableName { get; internal init; }

    /// <summary>Header filters: a message is delivered only if, for every entry, it has a header with that name and exactly that value.</summary>
    public HeaderBlock Filters { get; internal init; }
}
