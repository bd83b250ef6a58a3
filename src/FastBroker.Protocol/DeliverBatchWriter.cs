using System.Buffers;
using System.Buffers.Binary;
using FastBroker.Protocol.Internal;

namespace FastBroker.Protocol;

/// <summary>
/// Builds one DELIVER_BATCH frame in place (reserve, append while it fits, back-patch length and count on
/// <see cref="Complete"/>). <see cref="TryAddBlock"/> appends a message block straight from a journal record.
/// Allocation-free; nothing is committed before <see cref="Complete"/>.
/// </summary>
public ref struct DeliverBatchWriter
{
    private const int FixedBody = 8;
    private const int CountOffset = ProtocolConstants.HeaderSize + 4;

    private readonly IBufferWriter<byte> _output;
    private readonly Span<byte> _frame;
    private int _length;
    private bool _completed;

    /// <summary>Starts a batch for <paramref name="subscriptionId"/>, at most <paramref name="capacity"/> bytes (the client's max inbound frame size).</summary>
    public DeliverBatchWriter(IBufferWriter<byte> output, int capacity, uint subscriptionId)
    {
        Check.NonZero(subscriptionId, nameof(subscriptionId));
        if (capacity < ProtocolConstants.HeaderSize + FixedBody)
        {
            ThrowHelper.ThrowCapacityTooSmall(capacity, ProtocolConstants.HeaderSize + FixedBody);
        }

        _output = output;
        _frame = output.GetSpan(capacity)[..capacity];
        var c = new SpanCursor(_frame, 0);
        c.Header(FrameType.DeliverBatch, 0, 0);
        c.U32(subscriptionId);
        c.U16(0); // count, back-patched
        c.U16(0);
        _length = c.Position;
        Count = 0;
        _completed = false;
    }

    /// <summary>Messages added.</summary>
    public int Count { get; private set; }

    /// <summary>Bytes of the frame so far.</summary>
    public readonly int Length => _length;

    /// <summary>Appends a message from its fields; false (nothing written) when it does not fit.</summary>
    public bool TryAdd(uint deliveryCount, ulong offset, long timestampNs, ReadOnlySpan<byte> topic, ReadOnlySpan<byte> payload, ReadOnlySpan<byte> key = default, ReadOnlySpan<byte> headers = default)
    {
        var c = Begin(deliveryCount, offset, timestampNs, topic, Check.Message(key, headers, payload), out var fits);
        if (!fits)
        {
            return false;
        }

        c.Message(key, headers, payload);
        End(c.Position);
        return true;
    }

    /// <summary>Appends a message whose encoded message block is at hand (e.g. a journal record body); not re-validated.</summary>
    public bool TryAddBlock(uint deliveryCount, ulong offset, long timestampNs, ReadOnlySpan<byte> topic, ReadOnlySpan<byte> messageBlock)
    {
        var c = Begin(deliveryCount, offset, timestampNs, topic, messageBlock.Length, out var fits);
        if (!fits)
        {
            return false;
        }

        c.Bytes(messageBlock);
        End(c.Position);
        return true;
    }

    private readonly SpanCursor Begin(uint deliveryCount, ulong offset, long timestampNs, ReadOnlySpan<byte> topic, long blockLength, out bool fits)
    {
        if (_completed)
        {
            ThrowHelper.ThrowBatchCompleted();
        }

        Check.NonZero(deliveryCount, nameof(deliveryCount));
        Check.Name(topic, nameof(topic), allowEmpty: false);
        var size = 20 + 1 + topic.Length + blockLength;
        fits = Count < ProtocolConstants.MaxBatchCount && size <= _frame.Length - _length;
        var c = new SpanCursor(_frame, _length);
        if (fits)
        {
            c.U32(deliveryCount);
            c.U64(offset);
            c.I64(timestampNs);
            c.Str8(topic);
        }

        return c;
    }

    private void End(int position)
    {
        _length = position;
        Count++;
    }

    /// <summary>Back-patches length and count and advances the writer; returns the frame's bytes (0 and nothing written for an empty batch).</summary>
    public int Complete()
    {
        if (_completed)
        {
            ThrowHelper.ThrowBatchCompleted();
        }

        _completed = true;
        if (Count == 0)
        {
            return 0;
        }

        BinaryPrimitives.WriteUInt32LittleEndian(_frame, (uint)(_length - ProtocolConstants.LengthPrefixSize));
        BinaryPrimitives.WriteUInt16LittleEndian(_frame[CountOffset..], (ushort)Count);
        _output.Advance(_length);
        return _length;
    }
}
