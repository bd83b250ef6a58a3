using System.Buffers;
using FastBroker.Protocol.Internal;

namespace FastBroker.Protocol;

/// <summary>SUBSCRIBE, UNSUBSCRIBE, CREDIT, COMMIT, JOIN_GROUP, ACK and NACK.</summary>
public static partial class FrameWriter
{
    /// <summary>SUBSCRIBE. <paramref name="filters"/> is an encoded header block of name = value filters (all must match).</summary>
    public static int WriteSubscribe(
        IBufferWriter<byte> writer,
        ulong requestId,
        uint subscriptionId,
        ReadOnlySpan<byte> pattern,
        uint initialCredit,
        StartKind start = StartKind.Latest,
        ulong startValue = 0,
        ReadOnlySpan<byte> durableName = default,
        StartKind fallback = StartKind.Latest,
        ReadOnlySpan<byte> filters = default)
    {
        Check.NonZero(subscriptionId, nameof(subscriptionId));
        Check.Name(pattern, nameof(pattern), allowEmpty: false);
        Check.Name(durableName, nameof(durableName), allowEmpty: true);
        long total = H + 20 + 1 + pattern.Length + 1 + durableName.Length + 4 + (long)filters.Length;
        var o = new FrameOutput(writer, total);
        o.Header(total, FrameType.Subscribe, 0, requestId);
        o.U32(subscriptionId);
        o.U32(initialCredit);
        o.U8((byte)start);
        o.U8((byte)fallback);
        o.U16(0);
        o.U64(startValue);
        o.Str8(pattern);
        o.Str8(durableName);
        o.Bytes32(filters);
        o.Commit();
        return (int)total;
    }

    /// <summary>UNSUBSCRIBE: end a subscription or leave a group.</summary>
    public static int WriteUnsubscribe(IBufferWriter<byte> writer, ulong requestId, uint subscriptionId)
    {
        Check.NonZero(subscriptionId, nameof(subscriptionId));
        const int total = H + 4;
        var o = new FrameOutput(writer, total);
        o.Header(total, FrameType.Unsubscribe, 0, requestId);
        o.U32(subscriptionId);
        o.Commit();
        return total;
    }

    /// <summary>CREDIT: allow <paramref name="credit"/> (≥ 1) more deliveries.</summary>
    public static int WriteCredit(IBufferWriter<byte> writer, ulong requestId, uint subscriptionId, uint credit)
    {
        Check.NonZero(subscriptionId, nameof(subscriptionId));
        Check.NonZero(credit, nameof(credit));
        const int total = H + 8;
        var o = new FrameOutput(writer, total);
        o.Header(total, FrameType.Credit, 0, requestId);
        o.U32(subscriptionId);
        o.U32(credit);
        o.Commit();
        return total;
    }

    /// <summary>
    /// COMMIT: <paramref name="offset"/> is the next offset of <paramref name="topic"/> to deliver after a restart
    /// (last processed + 1); an empty topic means the subscription's only topic (required for wildcard subscriptions).
    /// </summary>
    public static int WriteCommit(IBufferWriter<byte> writer, ulong requestId, uint subscriptionId, ulong offset, ReadOnlySpan<byte> topic = default)
    {
        Check.NonZero(subscriptionId, nameof(subscriptionId));
        Check.Name(topic, nameof(topic), allowEmpty: true);
        long total = H + 16 + 1 + topic.Length;
        var o = new FrameOutput(writer, total);
        o.Header(total, FrameType.Commit, 0, requestId);
        o.U32(subscriptionId);
        o.U32(0);
        o.U64(offset);
        o.Str8(topic);
        o.Commit();
        return (int)total;
    }

    /// <summary>JOIN_GROUP as member <paramref name="subscriptionId"/>.</summary>
    public static int WriteJoinGroup(
        IBufferWriter<byte> writer,
        ulong requestId,
        uint subscriptionId,
        ReadOnlySpan<byte> group,
        ReadOnlySpan<byte> topic,
        uint prefetch,
        uint visibilityTimeoutMs = 0,
        ushort maxDeliveries = 0)
    {
        Check.NonZero(subscriptionId, nameof(subscriptionId));
        Check.NonZero(prefetch, nameof(prefetch));
        Check.Name(group, nameof(group), allowEmpty: false);
        Check.Name(topic, nameof(topic), allowEmpty: false);
        long total = H + 16 + 1 + group.Length + 1 + topic.Length;
        var o = new FrameOutput(writer, total);
        o.Header(total, FrameType.JoinGroup, 0, requestId);
        o.U32(subscriptionId);
        o.U32(prefetch);
        o.U32(visibilityTimeoutMs);
        o.U16(maxDeliveries);
        o.U16(0);
        o.Str8(group);
        o.Str8(topic);
        o.Commit();
        return (int)total;
    }

    /// <summary>ACK one delivery.</summary>
    public static int WriteAck(IBufferWriter<byte> writer, ulong requestId, uint subscriptionId, DeliveryTag tag)
        => WriteAck(writer, requestId, subscriptionId, new ReadOnlySpan<DeliveryTag>(in tag));

    /// <summary>ACK 1 to 65535 deliveries.</summary>
    public static int WriteAck(IBufferWriter<byte> writer, ulong requestId, uint subscriptionId, ReadOnlySpan<DeliveryTag> tags)
    {
        Check.NonZero(subscriptionId, nameof(subscriptionId));
        if (tags.IsEmpty || tags.Length > ProtocolConstants.MaxBatchCount)
        {
            ThrowHelper.ThrowTooLong(nameof(tags), tags.Length, ProtocolConstants.MaxBatchCount);
        }

        long total = H + 8 + ((long)ProtocolConstants.DeliveryTagSize * tags.Length);
        var o = new FrameOutput(writer, total);
        o.Header(total, FrameType.Ack, 0, requestId);
        o.U32(subscriptionId);
        o.U16((ushort)tags.Length);
        o.U16(0);
        foreach (var tag in tags)
        {
            Check.NonZero(tag.DeliveryCount, nameof(tags));
            o.U64(tag.Offset);
            o.U32(tag.DeliveryCount);
        }

        o.Commit();
        return (int)total;
    }

    /// <summary>NACK one delivery: requeue after <paramref name="delayMs"/>, or dead-letter now.</summary>
    public static int WriteNack(
        IBufferWriter<byte> writer,
        ulong requestId,
        uint subscriptionId,
        DeliveryTag tag,
        bool requeue,
        uint delayMs = 0,
        ReadOnlySpan<byte> errorText = default)
    {
        Check.NonZero(subscriptionId, nameof(subscriptionId));
        Check.NonZero(tag.DeliveryCount, nameof(tag));
        Check.Short(errorText, nameof(errorText));
        long total = H + 20 + 2 + errorText.Length;
        var o = new FrameOutput(writer, total);
        o.Header(total, FrameType.Nack, requeue ? (byte)NackFlags.Requeue : (byte)0, requestId);
        o.U32(subscriptionId);
        o.U32(tag.DeliveryCount);
        o.U64(tag.Offset);
        o.U32(delayMs);
        o.Bytes16(errorText);
        o.Commit();
        return (int)total;
    }
}
