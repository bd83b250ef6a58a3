using System.Text;
using FastBroker.Client.Internal;
using FastBroker.Protocol;

namespace FastBroker.Client;

/// <summary>
/// A message received by a subscription or a work-queue member. It owns a copy of its bytes (one array for key,
/// headers and payload), so it stays valid after the next message arrives.
/// </summary>
public sealed class ClientMessage
{
    internal ClientMessage(SubscriptionState owner, TopicPosition? position, long generation, string topic, ulong offset, long timestampNs, uint deliveryCount, byte[] block, int keyLength, int headersLength, int headerCount, int payloadLength)
    {
        Owner = owner;
        Position = position;
        Generation = generation;
        Topic = topic;
        Offset = (long)offset;
        TimestampNs = timestampNs;
        DeliveryCount = (int)deliveryCount;

        // Message block: u16 key length, key, u32 headers length, headers, u32 payload length, payload.
        var keyStart = 2;
        var headersStart = keyStart + keyLength + 4;
        var payloadStart = headersStart + headersLength + 4;
        Key = new ReadOnlyMemory<byte>(block, keyStart, keyLength);
        Headers = new ClientHeaders(new ReadOnlyMemory<byte>(block, headersStart, headersLength), headerCount);
        Payload = new ReadOnlyMemory<byte>(block, payloadStart, payloadLength);
    }

    /// <summary>The concrete topic (also for wildcard subscriptions).</summary>
    public string Topic { get; }

    /// <summary>The message's offset within its topic.</summary>
    public long Offset { get; }

    /// <summary>Publish time in nanoseconds since the Unix epoch.</summary>
    public long TimestampNs { get; }

    /// <summary>Publish time.</summary>
    public DateTimeOffset Timestamp => DateTimeOffset.UnixEpoch.AddTicks(TimestampNs / 100);

    /// <summary>The key; empty when the message has none.</summary>
    public ReadOnlyMemory<byte> Key { get; }

    /// <summary>The headers.</summary>
    public ClientHeaders Headers { get; }

    /// <summary>The payload.</summary>
    public ReadOnlyMemory<byte> Payload { get; }

    /// <summary>1 for fan-out subscriptions; for work queues 1 + the number of earlier deliveries.</summary>
    public int DeliveryCount { get; }

    /// <summary>The delivery tag (offset + delivery count) that ACK and NACK name.</summary>
    public DeliveryTag Tag => new((ulong)Offset, (uint)DeliveryCount);

    /// <summary>The subscription or membership id that received it.</summary>
    public uint SubscriptionId => Owner.Id;

    internal SubscriptionState Owner { get; }

    internal TopicPosition? Position { get; }

    // The connection it arrived on: a work-queue tag is only valid on that connection.
    internal long Generation { get; }

    /// <summary>The value of the first header named <paramref name="name"/>.</summary>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not valid UTF-16 (a lone surrogate), so it names no header.</exception>
    public bool TryGetHeader(string name, out ReadOnlyMemory<byte> value) => Headers.TryGetValue(name, out value);

    /// <summary>The payload decoded as UTF-8.</summary>
    public string GetPayloadString() => Encoding.UTF8.GetString(Payload.Span);

    /// <inheritdoc />
    public override string ToString() => $"{Topic}@{Offset} ({Payload.Length} bytes, delivery {DeliveryCount})";
}
