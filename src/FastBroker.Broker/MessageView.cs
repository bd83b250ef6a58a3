using FastBroker.Engine;

namespace FastBroker;

/// <summary>
/// A delivered message as a view: for persistent topics the spans point straight into the journal mapping
/// (zero-copy), valid only during the callback that receives the view. Copy what you keep
/// (<see cref="ToMessage"/> does).
/// </summary>
public readonly ref struct MessageView
{
    internal MessageView(Engine.TopicState topic, long offset, long timestamp, ReadOnlySpan<byte> key, ReadOnlySpan<byte> headers, ReadOnlySpan<byte> payload, int deliveryCount)
    {
        Topic = topic.Name;
        TopicUtf8 = topic.NameUtf8;
        Offset = offset;
        Timestamp = timestamp;
        Key = key;
        Headers = headers;
        Payload = payload;
        DeliveryCount = deliveryCount;
    }

    /// <summary>The topic it was published to.</summary>
    public string Topic { get; }

    /// <summary>The topic's name as UTF-8 (cached by the broker: no encoding per message).</summary>
    public ReadOnlySpan<byte> TopicUtf8 { get; }

    /// <summary>Its offset in the topic (dense: 0, 1, 2, …).</summary>
    public long Offset { get; }

    /// <summary>When the broker accepted it, Unix milliseconds.</summary>
    public long Timestamp { get; }

    /// <summary>The key (empty if none).</summary>
    public ReadOnlySpan<byte> Key { get; }

    /// <summary>The encoded header block (see <see cref="MessageHeaders"/>).</summary>
    public ReadOnlySpan<byte> Headers { get; }

    /// <summary>The payload.</summary>
    public ReadOnlySpan<byte> Payload { get; }

    /// <summary>For work-queue deliveries: 1 on first delivery, more on redelivery; 0 for subscriptions.</summary>
    public int DeliveryCount { get; }

    /// <summary>Finds a header's value by its UTF-8 name.</summary>
    public bool TryGetHeader(scoped ReadOnlySpan<byte> utf8Name, out ReadOnlySpan<byte> value) => MessageHeaders.TryGet(Headers, utf8Name, out value);

    /// <summary>Finds a header's value by name (encodes the name on the stack).</summary>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not valid UTF-16 text (a lone surrogate: as U+FFFD
    /// it would find another header).</exception>
    public bool TryGetHeader(string name, out ReadOnlySpan<byte> value)
    {
        Span<byte> utf8 = stackalloc byte[256];
        if (Utf8Text.GetByteCount(name, nameof(name)) > utf8.Length)
        {
            value = default;
            return false;
        }

        var n = Utf8Text.GetBytes(name, utf8);
        return MessageHeaders.TryGet(Headers, utf8[..n], out value);
    }

    /// <summary>Copies the message out of the journal into an owned <see cref="Message"/>.</summary>
    public Message ToMessage() => new(Topic, Offset, Timestamp, Key.ToArray(), Headers.ToArray(), Payload.ToArray(), DeliveryCount);
}
