using System.Buffers;
using System.Buffers.Binary;
using FastBroker.Journal;

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

    /// <summary>The embedded API's awaiter, or null.</summary>
    public PublishCompletion? Completion;

    /// <summary>The claim API's confirmation sink and the caller's token, or null.</summary>
    public IPublishConfirmSink? Sink;
    public ulong Token;

    /// <summary>True when the confirmation waits for the topic's group commit.</summary>
    public bool WaitDurable;

    /// <summary>What the confirmation waits for on a failover pair (ignored by a broker without a standby).</summary>
    public AckMode AckMode;

    /// <summary>Idempotent producer id (0 = none), sequence and epoch (0 = none).</summary>
    public ulong ProducerId;
    public ulong ProducerSequence;
    public ulong ProducerEpoch;

    /// <summary>Set by the journaler: the offset given, or -1 with <see cref="Error"/> set.</summary>
    public long Offset;

    /// <summary>Set by the journaler: an idempotent retry of a stored message (nothing written, original offset).</summary>
    public bool Duplicate;
    public BrokerErrorCode Error;
    public string? ErrorReason;

    public ReadOnlySpan<byte> Key => Buffer.AsSpan(0, KeyLength);

    public ReadOnlySpan<byte> Headers => Buffer.AsSpan(KeyLength, HeadersLength);

    public ReadOnlySpan<byte> Payload => Buffer.AsSpan(KeyLength + HeadersLength, PayloadLength);

    /// <summary>Copies a message in (publisher thread, after claiming the slot).</summary>
    public void Fill(TopicState topic, ReadOnlySpan<byte> key, ReadOnlySpan<byte> headers, ReadOnlySpan<byte> payload, long expiresAt, PublishCompletion? completion)
    {
        var dst = Prepare(topic, key.Length, headers.Length, payload.Length, expiresAt, 0, 0, 0);
        key.CopyTo(dst);
        headers.CopyTo(dst[key.Length..]);
        payload.CopyTo(dst[(HeadersLength + key.Length)..]);
        Completion = completion;
        WaitDurable = topic.Durability is not null;
        AckMode = topic.Persistent ? topic.Options.Acks : AckMode.Local;
    }

    /// <summary>Copies a message in from received frame bytes (claim API).</summary>
    public void Fill(TopicState topic, in ReadOnlySequence<byte> key, in ReadOnlySequence<byte> headers, in ReadOnlySequence<byte> payload, long expiresAt, ulong producerId, ulong producerSequence, ulong producerEpoch, bool waitDurable, AckMode ackMode, IPublishConfirmSink? sink, ulong token)
    {
        var dst = Prepare(topic, (int)key.Length, (int)headers.Length, (int)payload.Length, expiresAt, producerId, producerSequence, producerEpoch);
        key.CopyTo(dst);
        headers.CopyTo(dst[(int)key.Length..]);
        payload.CopyTo(dst[(HeadersLength + KeyLength)..]);
        Sink = sink;
        Token = token;
        WaitDurable = waitDurable;
        AckMode = ackMode;
    }

    /// <summary>Marks the slot as a publish refused before it reached the journaler (it only carries the outcome).</summary>
    public void FillFailed(BrokerErrorCode code, string reason, IPublishConfirmSink? sink, ulong token)
    {
        Topic = null;
        KeyLength = HeadersLength = PayloadLength = 0;
        Flags = 0;
        Completion = null;
        Sink = sink;
        Token = token;
        WaitDurable = false;
        AckMode = AckMode.Local;
        ProducerId = 0;
        ProducerSequence = 0;
        ProducerEpoch = 0;
        Offset = -1;
        Duplicate = false;
        Error = code;
        ErrorReason = reason;
    }

    /// <summary>
    /// Marks the slot as carrying nothing: it only wakes the journaler (a capture asked for while it may be idle:
    /// <see cref="ProducerCheckpoint.Wake"/>). Refused with no one to tell, so neither stage does anything with it.
    /// </summary>
    public void FillWake() => FillFailed(BrokerErrorCode.Closed, "a wake-up of the journaler", null, 0);

    /// <summary>Drops references once the dispatcher is done, so the slot pins nothing.</summary>
    public void Clear()
    {
        Topic = null;
        Completion = null;
        Sink = null;
        ErrorReason = null;
    }

    /// <summary>Sizes the buffer, writes the broker's own headers (expiry, producer) after the caller's, sets the lengths; returns the buffer.</summary>
    private Span<byte> Prepare(TopicState topic, int keyLength, int headersLength, int payloadLength, long expiresAt, ulong producerId, ulong producerSequence, ulong producerEpoch)
    {
        var expiry = expiresAt > 0 ? Broker.ExpiryHeaderSize : 0;
        var producer = producerId != 0 ? Broker.ProducerHeaderSize(producerEpoch != 0) : 0;
        var total = keyLength + headersLength + expiry + producer + payloadLength;
        if (Buffer.Length < total)
        {
            topic.SlotGrowthFault?.Invoke();
            Buffer = new byte[Math.Max(total, Buffer.Length * 2)];
        }

        var dst = Buffer.AsSpan();
        var at = keyLength + headersLength;
        if (expiry > 0)
        {
            var h = dst.Slice(at, expiry);
            RecordHeaderReader.Write(h, Broker.ExpiresHeaderName, stackalloc byte[8]);
            BinaryPrimitives.WriteInt64LittleEndian(h[(3 + Broker.ExpiresHeaderName.Length)..], expiresAt);
            at += expiry;
        }

        if (producer > 0)
        {
            // id, sequence, and the epoch when there is one (16 or 24 bytes: docs/broker.md, "Reserved headers").
            var h = dst.Slice(at, producer);
            RecordHeaderReader.Write(h, Broker.ProducerHeaderName, stackalloc byte[producerEpoch != 0 ? 24 : 16]);
            BinaryPrimitives.WriteUInt64LittleEndian(h[(3 + Broker.ProducerHeaderName.Length)..], producerId);
            BinaryPrimitives.WriteUInt64LittleEndian(h[(11 + Broker.ProducerHeaderName.Length)..], producerSequence);
            if (producerEpoch != 0)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(h[(19 + Broker.ProducerHeaderName.Length)..], producerEpoch);
            }
        }

        KeyLength = keyLength;
        HeadersLength = headersLength + expiry + producer;
        PayloadLength = payloadLength;
        Topic = topic;
        Flags = (ushort)((expiry > 0 ? Broker.HasExpiryFlag : 0) | (producer > 0 ? Broker.HasProducerFlag : 0));
        Completion = null;
        Sink = null;
        Token = 0;
        ProducerId = producerId;
        ProducerSequence = producerSequence;
        ProducerEpoch = producerEpoch;
        Offset = -1;
        Duplicate = false;
        Error = BrokerErrorCode.None;
        ErrorReason = null;
        return dst;
    }
}
