using System.Buffers;
using FastBroker.Protocol.Internal;

namespace FastBroker.Protocol;

/// <summary>PUBLISH, CONFIRM, INIT_PRODUCER, DELIVER and DROPPED.</summary>
public static partial class FrameWriter
{
    /// <summary>Size of a PUBLISH frame with these field lengths (compare with the server's maxFrameSize).</summary>
    public static long GetPublishSize(int topicLength, int keyLength, int headersLength, int payloadLength)
        => H + 21 + 1 + topicLength + MessageBlock.GetLength(keyLength, headersLength, payloadLength);

    /// <summary>Size of a DELIVER frame with these field lengths.</summary>
    public static long GetDeliverSize(int topicLength, int messageBlockLength)
        => H + 24 + 1 + topicLength + (long)messageBlockLength;

    /// <summary>PUBLISH one message. <paramref name="headers"/> is an encoded header block (see <see cref="HeaderBlockWriter"/>).</summary>
    public static int WritePublish(
        IBufferWriter<byte> writer,
        ulong requestId,
        ReadOnlySpan<byte> topic,
        ReadOnlySpan<byte> payload,
        ReadOnlySpan<byte> key = default,
        ReadOnlySpan<byte> headers = default,
        Durability durability = Durability.TopicDefault,
        uint ttlMs = 0,
        ulong producerId = 0,
        ulong producerSequence = 0,
        PublishFlags flags = PublishFlags.None)
    {
        Check.Name(topic, nameof(topic), allowEmpty: false);
        var total = H + 21 + 1 + topic.Length + Check.Message(key, headers, payload);
        var o = new FrameOutput(writer, total);
        o.Header(total, FrameType.Publish, (byte)flags, requestId);
        o.U64(producerId);
        o.U64(producerSequence);
        o.U32(ttlMs);
        o.U8((byte)durability);
        o.Str8(topic);
        o.Message(key, headers, payload);
        o.Commit();
        return (int)total;
    }

    /// <summary>CONFIRM with the given ranges (1 to 65535); see also <see cref="ConfirmWriter"/>, which merges consecutive ones.</summary>
    public static int WriteConfirm(IBufferWriter<byte> writer, ReadOnlySpan<ConfirmRange> ranges)
    {
        if (ranges.IsEmpty || ranges.Length > ProtocolConstants.MaxBatchCount)
        {
            ThrowHelper.ThrowTooLong(nameof(ranges), ranges.Length, ProtocolConstants.MaxBatchCount);
        }

        long total = H + 4 + ((long)ProtocolConstants.ConfirmRangeSize * ranges.Length);
        var o = new FrameOutput(writer, total);
        o.Header(total, FrameType.Confirm, 0, 0);
        o.U16((ushort)ranges.Length);
        o.U16(0);
        foreach (var r in ranges)
        {
            Check.NonZero(r.Count, nameof(ranges));
            o.U64(r.FirstRequestId);
            o.U32(r.Count);
            o.U16((ushort)r.Status);
            o.U16(r.Duplicate ? (ushort)1 : (ushort)0);
            o.U64(r.FirstOffset);
        }

        o.Commit();
        return (int)total;
    }

    /// <summary>CONFIRM with one range.</summary>
    public static int WriteConfirm(IBufferWriter<byte> writer, ConfirmRange range)
        => WriteConfirm(writer, new ReadOnlySpan<ConfirmRange>(in range));

    /// <summary>
    /// INIT_PRODUCER (feature <see cref="ProtocolFeatures.InitProducer"/>): asks the next producer sequence of
    /// <paramref name="producerId"/>; the server answers OK with it.
    /// </summary>
    public static int WriteInitProducer(IBufferWriter<byte> writer, ulong requestId, ulong producerId)
        => WriteU64Body(writer, FrameType.InitProducer, requestId, producerId);

    /// <summary>
    /// INIT_PRODUCER with an epoch (feature <see cref="ProtocolFeatures.ProducerEpoch"/>): <paramref name="epoch"/> 0 =
    /// a new instance of <paramref name="producerId"/> (it gets an epoch above every earlier one, fencing them); else
    /// the epoch this instance resumes after a reconnect. The server answers OK with the next sequence and the epoch, or
    /// ERROR <see cref="ErrorCode.ProducerFenced"/>.
    /// </summary>
    public static int WriteInitProducer(IBufferWriter<byte> writer, ulong requestId, ulong producerId, ulong epoch)
        => WriteTwoU64Body(writer, FrameType.InitProducer, requestId, producerId, epoch);

    /// <summary>DELIVER one message from its fields.</summary>
    public static int WriteDeliver(
        IBufferWriter<byte> writer,
        uint subscriptionId,
        uint deliveryCount,
        ulong offset,
        long timestampNs,
        ReadOnlySpan<byte> topic,
        ReadOnlySpan<byte> payload,
        ReadOnlySpan<byte> key = default,
        ReadOnlySpan<byte> headers = default)
    {
        var block = Check.Message(key, headers, payload);
        var o = DeliverPrefix(writer, subscriptionId, deliveryCount, offset, timestampNs, topic, block, out var total);
        o.Message(key, headers, payload);
        o.Commit();
        return (int)total;
    }

    /// <summary>
    /// DELIVER one message whose encoded message block (key, headers, payload with their lengths) is already at
    /// hand, e.g. the body of a journal record: copied as one range, never re-encoded. Not validated here.
    /// </summary>
    public static int WriteDeliverBlock(
        IBufferWriter<byte> writer,
        uint subscriptionId,
        uint deliveryCount,
        ulong offset,
        long timestampNs,
        ReadOnlySpan<byte> topic,
        ReadOnlySpan<byte> messageBlock)
    {
        var o = DeliverPrefix(writer, subscriptionId, deliveryCount, offset, timestampNs, topic, messageBlock.Length, out var total);
        o.Bytes(messageBlock);
        o.Commit();
        return (int)total;
    }

    private static FrameOutput DeliverPrefix(IBufferWriter<byte> writer, uint subscriptionId, uint deliveryCount, ulong offset, long timestampNs, ReadOnlySpan<byte> topic, long blockLength, out long total)
    {
        Check.NonZero(subscriptionId, nameof(subscriptionId));
        Check.NonZero(deliveryCount, nameof(deliveryCount));
        Check.Name(topic, nameof(topic), allowEmpty: false);
        total = H + 24 + 1 + topic.Length + blockLength;
        var o = new FrameOutput(writer, total);
        o.Header(total, FrameType.Deliver, 0, 0);
        o.U32(subscriptionId);
        o.U32(deliveryCount);
        o.U64(offset);
        o.I64(timestampNs);
        o.Str8(topic);
        return o;
    }

    /// <summary>DROPPED: a subscription missed <paramref name="droppedCount"/> messages (ring overrun or retention) and resumes at <paramref name="resumeOffset"/>.</summary>
    public static int WriteDropped(IBufferWriter<byte> writer, uint subscriptionId, ulong droppedCount, ulong resumeOffset)
    {
        Check.NonZero(subscriptionId, nameof(subscriptionId));
        const int total = H + 24;
        var o = new FrameOutput(writer, total);
        o.Header(total, FrameType.Dropped, 0, 0);
        o.U32(subscriptionId);
        o.U32(0);
        o.U64(droppedCount);
        o.U64(resumeOffset);
        o.Commit();
        return total;
    }
}
