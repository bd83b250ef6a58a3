using System.Buffers.Binary;

namespace FastBroker.Engine;

/// <summary>
/// One pre-allocated slot of the input ring: the message copied in by the publisher (key, headers, payload in one
/// buffer that grows once for large messages and is then reused), what the journaler made of it, and who waits.
/// </summary>
internal sealed class PublishEntry(int bytes)
{
    public TopicState? Topic;
    public byte[] Buffer = new byte[bytes];
    public int KeyLength;
    public int HeadersLength;
    public int PayloadLength;
    public ushort Flags;
    public PublishCompletion? Completion;

    /// <summary>Set by the journaler: the offset given, or -1 with <see cref="Error"/> set.</summary>
    public long Offset;
    public BrokerErrorCode Error;
    public string? ErrorReason;

    public ReadOnlySpan<byte> Key => Buffer.AsSpan(0, KeyLength);

    public ReadOnlySpan<byte> Headers => Buffer.AsSpan(KeyLength, HeadersLength);

    public ReadOnlySpan<byte> Payload => Buffer.AsSpan(KeyLength + HeadersLength, PayloadLength);

    /// <summary>Copies a message in (publisher thread, after claiming the slot).</summary>
    public void Fill(TopicState topic, ReadOnlySpan<byte> key, ReadOnlySpan<byte> headers, ReadOnlySpan<byte> payload, long expiresAt, PublishCompletion? completion)
    {
        var expiry = expiresAt > 0 ? Broker.ExpiryHeaderSize : 0;
        var total = key.Length + headers.Length + expiry + payload.Length;
        if (Buffer.Length < total)
        {
            Buffer = new byte[Math.Max(total, Buffer.Length * 2)];
        }

        var dst = Buffer.AsSpan();
        key.CopyTo(dst);
        headers.CopyTo(dst[key.Length..]);
        if (expiry > 0)
        {
            var h = dst.Slice(key.Length + headers.Length, expiry);
            BinaryPrimitives.WriteUInt16LittleEndian(h, (ushort)Broker.ExpiresHeaderName.Length);
            Broker.ExpiresHeaderName.CopyTo(h[2..]);
            BinaryPrimitives.WriteUInt32LittleEndian(h[(2 + Broker.ExpiresHeaderName.Length)..], 8);
            BinaryPrimitives.WriteInt64LittleEndian(h[(6 + Broker.ExpiresHeaderName.Length)..], expiresAt);
        }

        payload.CopyTo(dst[(key.Length + headers.Length + expiry)..]);
        KeyLength = key.Length;
        HeadersLength = headers.Length + expiry;
        PayloadLength = payload.Length;
        Topic = topic;
        Flags = expiry > 0 ? Broker.HasExpiryFlag : (ushort)0;
        Completion = completion;
        Offset = -1;
        Error = BrokerErrorCode.None;
        ErrorReason = null;
    }

    /// <summary>Drops references once the dispatcher is done, so the slot pins nothing.</summary>
    public void Clear()
    {
        Topic = null;
        Completion = null;
        ErrorReason = null;
    }
}
