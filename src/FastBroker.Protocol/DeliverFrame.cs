using System.Buffers;

namespace FastBroker.Protocol;

/// <summary>A parsed DELIVER (server → client). Spans and slices are valid only during the handler call.</summary>
public readonly ref struct DeliverFrame
{
    /// <summary>The subscription (or group membership) this delivery belongs to.</summary>
    public uint SubscriptionId { get; internal init; }

    /// <summary>1 for a first delivery; work queues count redeliveries. With <see cref="Offset"/> it forms the delivery tag.</summary>
    public uint DeliveryCount { get; internal init; }

    /// <summary>The message's topic offset.</summary>
    public ulong Offset { get; internal init; }

    /// <summary>Publish time, nanoseconds since the Unix epoch.</summary>
    public long TimestampNs { get; internal init; }

    /// <summary>UTF-8 topic name.</summary>
    public ReadOnlySpan<byte> Topic { get; internal init; }

    /// <summary>The key.</summary>
    public ReadOnlySequence<byte> Key { get; internal init; }

    /// <summary>The headers.</summary>
    public HeaderBlock Headers { get; internal init; }

    /// <summary>The payload.</summary>
    public ReadOnlySequence<byte> Payload { get; internal init; }

    /// <summary>Key, headers and payload exactly as on the wire.</summary>
    public ReadOnlySequence<byte> MessageBlock { get; internal init; }

    /// <summary>The delivery tag to ACK or NACK.</summary>
    public DeliveryTag Tag => new(Offset, DeliveryCount);
}
