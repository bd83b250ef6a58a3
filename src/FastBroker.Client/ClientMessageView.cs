using System.Text;
using FastBroker.Client.Internal;
using FastBroker.Protocol;

namespace FastBroker.Client;

/// <summary>
/// A message delivered to an <see cref="IClientMessageHandler"/>: a view over the bytes the client received (zero
/// copy: the spans point into the connection's receive buffer, or into a reused per-connection scratch buffer when
/// the message straddled two reads). Valid only during <see cref="IClientMessageHandler.OnMessage"/>; copy what you
/// keep (<see cref="ToMessage"/> does).
/// </summary>
public readonly ref struct ClientMessageView
{
    private readonly SubscriptionState _owner;
    private readonly TopicPosition _position;
    private readonly ReadOnlySpan<byte> _block;
    private readonly long _generation;

    internal ClientMessageView(SubscriptionState owner, TopicPosition position, long generation, ReadOnlySpan<byte> topicUtf8, ulong offset, long timestampNs, uint deliveryCount, ReadOnlySpan<byte> block, int keyLength, int headersLength, int headerCount, int payloadLength)
    {
        _owner = owner;
        _position = position;
        _generation = generation;
        _block = block;
        TopicUtf8 = topicUtf8;
        Offset = (long)offset;
        TimestampNs = timestampNs;
        DeliveryCount = (int)deliveryCount;
        HeaderCount = headerCount;

        // Message block: u16 key length, key, u32 headers length, headers, u32 payload length, payload.
        var headersStart = 2 + keyLength + 4;
        Key = block.Slice(2, keyLength);
        Headers = block.Slice(headersStart, headersLength);
        Payload = block.Slice(headersStart + headersLength + 4, payloadLength);
    }

    /// <summary>The concrete topic (also for wildcard patterns); the client's cached string, no decoding per message.</summary>
    public string Topic => _position.Name;

    /// <summary>The topic's name as UTF-8, as received.</summary>
    public ReadOnlySpan<byte> TopicUtf8 { get; }

    /// <summary>The message's offset within its topic.</summary>
    public long Offset { get; }

    /// <summary>Publish time in nanoseconds since the Unix epoch.</summary>
    public long TimestampNs { get; }

    /// <summary>Publish time.</summary>
    public DateTimeOffset Timestamp => DateTimeOffset.UnixEpoch.AddTicks(TimestampNs / 100);

    /// <summary>1 for fan-out deliveries.</summary>
    public int DeliveryCount { get; }

    /// <summary>The key; empty when the message has none.</summary>
    public ReadOnlySpan<byte> Key { get; }

    /// <summary>The encoded header entries (docs/protocol.md, header entry); look one up with <see cref="TryGetHeader(ReadOnlySpan{byte}, out ReadOnlySpan{byte})"/>.</summary>
    public ReadOnlySpan<byte> Headers { get; }

    /// <summary>Number of header entries.</summary>
    public int HeaderCount { get; }

    /// <summary>The payload.</summary>
    public ReadOnlySpan<byte> Payload { get; }

    /// <summary>The subscription id that received it.</summary>
    public uint SubscriptionId => _owner.Id;

    /// <summary>The value of the first header whose UTF-8 name is <paramref name="utf8Name"/> (byte for byte), without allocating.</summary>
    public bool TryGetHeader(scoped ReadOnlySpan<byte> utf8Name, out ReadOnlySpan<byte> value)
    {
        if (HeaderScan.TryFind(Headers, utf8Name, out var start, out var length))
        {
            value = Headers.Slice(start, length);
            return true;
        }

        value = default;
        return false;
    }

    /// <summary>The value of the first header named <paramref name="name"/> (the name is encoded on the stack, nothing allocated).</summary>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not valid UTF-16 (a lone surrogate), so it names no header.</exception>
    public bool TryGetHeader(string name, out ReadOnlySpan<byte> value)
    {
        Span<byte> utf8 = stackalloc byte[ProtocolConstants.MaxNameLength];
        var length = Utf8Names.EncodeLookupName(name, nameof(name), utf8);
        if (length < 0)
        {
            value = default;
            return false;
        }

        return TryGetHeader(utf8[..length], out value);
    }

    /// <summary>The value of the first header named <paramref name="name"/> decoded as UTF-8, or null (allocates the string).</summary>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not valid UTF-16 (a lone surrogate).</exception>
    public string? GetHeaderString(string name) => TryGetHeader(name, out var value) ? Encoding.UTF8.GetString(value) : null;

    /// <summary>The payload decoded as UTF-8 (allocates the string).</summary>
    public string GetPayloadString() => Encoding.UTF8.GetString(Payload);

    /// <summary>Copies the message into an owned <see cref="ClientMessage"/> (one array), e.g. to keep it or to commit it later.</summary>
    public ClientMessage ToMessage()
        => new(_owner, _position, _generation, _position.Name, (ulong)Offset, TimestampNs, (uint)DeliveryCount, _block.ToArray(), Key.Length, Headers.Length, HeaderCount, Payload.Length);

    /// <inheritdoc />
    public override string ToString() => $"{Topic}@{Offset} ({Payload.Length} bytes, delivery {DeliveryCount})";
}
