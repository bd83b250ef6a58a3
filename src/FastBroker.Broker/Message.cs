using System.Text;

namespace FastBroker;

/// <summary>A delivered message copied out of the journal: safe to keep, pass around and await across.</summary>
public sealed class Message
{
    private IReadOnlyList<KeyValuePair<string, byte[]>>? _decodedHeaders;

    /// <summary>Creates a message (normally done by the broker).</summary>
    public Message(string topic, long offset, long timestamp, ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> encodedHeaders, ReadOnlyMemory<byte> payload, int deliveryCount = 0)
    {
        Topic = topic;
        Offset = offset;
        Timestamp = timestamp;
        Key = key;
        EncodedHeaders = encodedHeaders;
        Payload = payload;
        DeliveryCount = deliveryCount;
    }

    /// <summary>The topic it was published to.</summary>
    public string Topic { get; }

    /// <summary>Its offset in the topic.</summary>
    public long Offset { get; }

    /// <summary>When the broker accepted it, Unix milliseconds.</summary>
    public long Timestamp { get; }

    /// <summary>The key (empty if none).</summary>
    public ReadOnlyMemory<byte> Key { get; }

    /// <summary>The header block as encoded by <see cref="MessageHeaders"/>.</summary>
    public ReadOnlyMemory<byte> EncodedHeaders { get; }

    /// <summary>The payload.</summary>
    public ReadOnlyMemory<byte> Payload { get; }

    /// <summary>For work-queue deliveries: how many times it has been delivered (1 = first time).</summary>
    public int DeliveryCount { get; }

    /// <summary>Headers decoded to (name, value) pairs.</summary>
    public IReadOnlyList<KeyValuePair<string, byte[]>> Headers => _decodedHeaders ??= MessageHeaders.Decode(EncodedHeaders.Span);

    /// <summary>The payload as UTF-8 text.</summary>
    public string PayloadText => Encoding.UTF8.GetString(Payload.Span);

    /// <summary>A header's value, or null.</summary>
    public byte[]? Header(string name)
    {
        foreach (var kv in Headers)
        {
            if (kv.Key == name)
            {
                return kv.Value;
            }
        }

        return null;
    }

    /// <summary>A header's value as UTF-8 text, or null.</summary>
    public string? HeaderText(string name) => Header(name) is { } v ? Encoding.UTF8.GetString(v) : null;

    /// <inheritdoc />
    public override string ToString() => $"{Topic}@{Offset}";
}
