using System.Buffers;

namespace FastBroker.Protocol;

/// <summary>A parsed NACK (client → server). Slices are valid only during the handler call.</summary>
public readonly ref struct NackFrame
{
    /// <summary>The group membership the delivery was made to.</summary>
    public uint SubscriptionId { get; internal init; }

    /// <summary>The delivery being rejected.</summary>
    public DeliveryTag Tag { get; internal init; }

    /// <summary>Requeue (header flag REQUEUE) or dead-letter now.</summary>
    public bool Requeue { get; internal init; }

    /// <summary>With <see cref="Requeue"/>: redeliver no sooner than this.</summary>
    public uint DelayMs { get; internal init; }

    /// <summary>UTF-8 error text kept as the message's last error (DLQ header); may be empty.</summary>
    public ReadOnlySequence<byte> ErrorText { get; internal init; }
}
