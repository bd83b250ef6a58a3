using System.Buffers;
using System.Buffers.Binary;
using FastBroker.Protocol.Internal;

namespace FastBroker.Protocol;

/// <summary>
/// Builds one PUBLISH_BATCH frame in place: reserves up to <c>capacity</c> contiguous bytes of the writer, writes
/// the header with a zero length, appends messages while they fit, and on <see cref="Complete"/> back-patches the
/// length and count and advances the writer. Nothing is committed before <see cref="Complete"/>, so an abandoned
/// batch leaves the writer untouched. Allocation-free.
/// </summary>
/// <example>
/// <code>
/// var batch = new PublishBatchWriter(pipeWriter, capacity: 64 * 1024, firstRequestId: nextId);
/// while (queue.TryPeek(out var m) &amp;&amp; batch.TryAdd(m.Topic, m.Payload)) { queue.Dequeue(); }
/// nextId += (ulong)batch.Count;
/// batch.Complete();
/// </code>
/// </example>
public ref struct PublishBatchWriter
{
    private const int FixedBody = 20;
    private const int CountOffset = ProtocolConstants.HeaderSize + 18;

    private readonly IBufferWriter<byte> _output;
    private readonly Span<byte> _frame;
    private int _length;
    private bool _completed;

    /// <summary>Starts a batch. Message <c>i</c> gets request id <paramref name="firstRequestId"/> + i and producer sequence <paramref name="firstProducerSequence"/> + i.</summary>
    /// <param name="output">The writer (a PipeWriter).</param>
    /// <param name="capacity">Largest frame to build (at most the server's maxFrameSize).</param>
    /// <param name="firstRequestId">Request id of the first message.</param>
    /// <param name="durability">What the confirmations wait for.</param>
    /// <param name="producerId">Idempotent producer id, or 0.</param>
    /// <param name="firstProducerSequence">Producer sequence of the first message.</param>
    /// <param name="flags">Header flags (NO_CONFIRM).</param>
    public PublishBatchWriter(IBufferWriter<byte> output, int capacity, ulong firstRequestId, Durability durability = Durability.TopicDefault, ulong producerId = 0, ulong firstProducerSequence = 0, PublishFlags flags = PublishFlags.None)
    {
        if (capacity < ProtocolConstants.HeaderSize + FixedBody)
        {
            ThrowHelper.ThrowCapacityTooSmall(capacity, ProtocolConstants.HeaderSize + FixedBody);
        }

        _output = output;
        _frame = output.GetSpan(capacity)[..capacity];
        var c = new SpanCursor(_frame, 0);
        c.Header(FrameType.PublishBatch, (byte)flags, firstRequestId);
        c.U64(producerId);
        c.U64(firstProducerSequence);
        c.U8((byte)durability);
        c.U8(0);
        c.U16(0); // count, back-patched
        _length = c.Position;
        Count = 0;
        _completed = false;
    }

    /// <summary>Messages added.</summary>
    public int Count { get; private set; }

    /// <summary>Bytes of the frame so far.</summary>
    public readonly int Length => _length;

    /// <summary>Encoded size of one batch entry.</summary>
    public static long GetEntrySize(int topicLength, int keyLength, int headersLength, int payloadLength)
        => 4 + 1 + topicLength + MessageBlock.GetLength(keyLength, headersLength, payloadLength);

    /// <summary>Appends a message; false (nothing written) when it does not fit or the batch has 65535 messages.</summary>
    public bool TryAdd(ReadOnlySpan<byte> topic, ReadOnlySpan<byte> payload, ReadOnlySpan<byte> key = default, ReadOnlySpan<byte> headers = default, uint ttlMs = 0)
    {
        if (_completed)
        {
            ThrowHelper.ThrowBatchCompleted();
        }

        Check.Name(topic, nameof(topic), allowEmpty: false);
        var size = 4 + 1 + topic.Length + Check.Message(key, headers, payload);
        if (Count == ProtocolConstants.MaxBatchCount || size > _frame.Length - _length)
        {
            return false;
        }

        var c = new SpanCursor(_frame, _length);
        c.U32(ttlMs);
        c.Str8(topic);
        c.Message(key, headers, payload);
        _length = c.Position;
        Count++;
        return true;
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
