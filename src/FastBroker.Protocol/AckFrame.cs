using System.Buffers;

namespace FastBroker.Protocol;

/// <summary>A parsed, validated ACK (client → server). Valid only during the handler call.</summary>
public readonly struct AckFrame
{
    internal AckFrame(uint subscriptionId, in ReadOnlySequence<byte> tags, int count)
    {
        SubscriptionId = subscriptionId;
        Tags = tags;
        Count = count;
    }

    /// <summary>The group membership the deliveries were made to.</summary>
    public uint SubscriptionId { get; }

    /// <summary>Number of tags (≥ 1).</summary>
    public int Count { get; }

    /// <summary>The encoded tags (12 bytes each).</summary>
    public ReadOnlySequence<byte> Tags { get; }

    /// <summary>Enumerates the tags.</summary>
    public DeliveryTagEnumerator GetEnumerator() => new(Tags);
}
