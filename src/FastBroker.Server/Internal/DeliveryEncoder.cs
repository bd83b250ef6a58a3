using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Text;
using FastBroker.Protocol;

namespace FastBroker.Server.Internal;

/// <summary>
/// Writes deliveries straight from <see cref="MessageView"/> spans (for persistent topics: the journal mapping) into
/// the pipe's memory: DELIVER per message, or DELIVER_BATCH frames when the client was granted <c>Batching</c>. One
/// copy per byte, no intermediate buffer. Writer thread only.
/// </summary>
/// <remarks>
/// A batch reserves contiguous pipe memory, appends entries while they fit, and back-patches length and count when
/// it is completed (the layout of <see cref="DeliverBatchWriter"/>, which as a ref struct cannot live across the
/// broker's per-message callbacks). Nothing else may be written to the pipe while a batch is open, so every other
/// frame completes the batch first.
/// </remarks>
internal sealed class DeliveryEncoder
{
    // 64 KiB: a few hundred small messages per frame, one contiguous pipe segment, well under the 1 MiB default limit.
    private const int BatchLimit = 64 * 1024;
    private const int BatchHeaderSize = ProtocolConstants.HeaderSize + 8;
    private const int EntryFixedSize = 4 + 8 + 8 + 1 + MessageBlock.FixedLength;

    private readonly PipeWriter _output;
    private readonly bool _batching;
    private readonly int _peerMaxFrame;
    private readonly int _batchCapacity;
    private readonly Dictionary<string, byte[]> _topics = new(StringComparer.Ordinal);
    private string? _lastTopic;
    private byte[] _lastTopicUtf8 = [];
    private Memory<byte> _batch;
    private int _batchLength;
    private int _batchCount;
    private Consumer? _consumer;
    private SubscriptionConsumer? _subscription;

    public DeliveryEncoder(PipeWriter output, bool batching, int peerMaxFrame)
    {
        _output = output;
        _batching = batching;
        _peerMaxFrame = peerMaxFrame;
        _batchCapacity = Math.Min(peerMaxFrame, BatchLimit);
    }

    /// <summary>Bytes written since the owner last reset it.</summary>
    public long Bytes { get; set; }

    /// <summary>Frames written since the owner last reset it.</summary>
    public long Frames { get; set; }

    /// <summary>A message larger than the client's maxInboundFrameSize was met: the subscription must end.</summary>
    public bool TooLarge { get; private set; }

    /// <summary>Describes the message that was too large (error path only).</summary>
    public string TooLargeReason { get; private set; } = "";

    /// <summary>Starts a fetch for <paramref name="consumer"/>.</summary>
    public void Begin(Consumer consumer)
    {
        _consumer = consumer;
        _subscription = consumer as SubscriptionConsumer;
        TooLarge = false;
    }

    /// <summary>Ends the fetch: completes the open batch and reports messages the subscription missed (ring overrun, retention).</summary>
    public void End()
    {
        CompleteBatch();
        if (_subscription is { } s && s.Subscription.Missed != s.MissedReported)
        {
            // Missed at the end of what is readable: the subscription resumes at its position (known for one topic).
            var positions = s.Subscription.Positions;
            var resume = positions.Count == 1 ? positions.First().Value : 0;
            WriteDropped(s, resume);
        }

        _consumer = null;
        _subscription = null;
    }

    /// <summary>Writes one delivery (the broker's callback, through <see cref="DeliverHandler"/>).</summary>
    public void Write(scoped in MessageView m)
    {
        if (TooLarge || _consumer is not { } consumer)
        {
            return; // the subscription is ending; the rest of this fetch is dropped with it
        }

        if (_subscription is { } s && s.Subscription.Missed != s.MissedReported)
        {
            WriteDropped(s, m.Offset);
        }

        var topic = TopicUtf8(m.Topic);
        var block = (long)MessageBlock.FixedLength + m.Key.Length + m.Headers.Length + m.Payload.Length;
        var deliveryCount = m.DeliveryCount > 0 ? (uint)m.DeliveryCount : 1u;
        var timestampNs = m.Timestamp * 1_000_000;
        if (_batching)
        {
            var entry = EntryFixedSize - MessageBlock.FixedLength + topic.Length + block;
            if (_batchCount > 0 && (entry > _batch.Length - _batchLength || _batchCount == ProtocolConstants.MaxBatchCount))
            {
                CompleteBatch();
            }

            if (BatchHeaderSize + entry <= _batchCapacity)
            {
                if (_batchCount == 0)
                {
                    StartBatch(consumer.Id, entry);
                }

                AppendEntry(deliveryCount, m.Offset, timestampNs, topic, m);
                return;
            }
        }

        var size = FrameWriter.GetDeliverSize(topic.Length, (int)Math.Min(block, int.MaxValue));
        if (size > _peerMaxFrame)
        {
            TooLarge = true;
            TooLargeReason = $"the message at offset {m.Offset} of '{m.Topic}' needs a {size}-byte frame, more than the {_peerMaxFrame} bytes this client accepts (maxInboundFrameSize)";
            return;
        }

        Bytes += FrameWriter.WriteDeliver(_output, consumer.Id, deliveryCount, (ulong)m.Offset, timestampNs, topic, m.Payload, m.Key, m.Headers);
        Frames++;
    }

    private void WriteDropped(SubscriptionConsumer s, long resumeOffset)
    {
        CompleteBatch();
        var missed = s.Subscription.Missed;
        Bytes += FrameWriter.WriteDropped(_output, s.Id, (ulong)(missed - s.MissedReported), (ulong)Math.Max(0, resumeOffset));
        Frames++;
        s.MissedReported = missed;
    }

    private void StartBatch(uint subscriptionId, long firstEntry)
    {
        // Use what the pipe's current segment has left (at least this entry): asking for the full 64 KiB every time
        // would start a new pooled segment per batch.
        _batch = _output.GetMemory((int)(BatchHeaderSize + firstEntry));
        if (_batch.Length > _batchCapacity)
        {
            _batch = _batch[.._batchCapacity];
        }

        var span = _batch.Span;
        span[..BatchHeaderSize].Clear();
        span[4] = (byte)FrameType.DeliverBatch;
        BinaryPrimitives.WriteUInt32LittleEndian(span[ProtocolConstants.HeaderSize..], subscriptionId);
        _batchLength = BatchHeaderSize;
        _batchCount = 0;
    }

    private void AppendEntry(uint deliveryCount, long offset, long timestampNs, ReadOnlySpan<byte> topic, scoped in MessageView m)
    {
        var span = _batch.Span[_batchLength..];
        BinaryPrimitives.WriteUInt32LittleEndian(span, deliveryCount);
        BinaryPrimitives.WriteInt64LittleEndian(span[4..], offset);
        BinaryPrimitives.WriteInt64LittleEndian(span[12..], timestampNs);
        span[20] = (byte)topic.Length;
        topic.CopyTo(span[21..]);
        var p = 21 + topic.Length;
        BinaryPrimitives.WriteUInt16LittleEndian(span[p..], (ushort)m.Key.Length);
        m.Key.CopyTo(span[(p + 2)..]);
        p += 2 + m.Key.Length;
        BinaryPrimitives.WriteUInt32LittleEndian(span[p..], (uint)m.Headers.Length);
        m.Headers.CopyTo(span[(p + 4)..]);
        p += 4 + m.Headers.Length;
        BinaryPrimitives.WriteUInt32LittleEndian(span[p..], (uint)m.Payload.Length);
        m.Payload.CopyTo(span[(p + 4)..]);
        p += 4 + m.Payload.Length;
        _batchLength += p;
        _batchCount++;
    }

    private void CompleteBatch()
    {
        if (_batchCount == 0)
        {
            return;
        }

        var span = _batch.Span;
        BinaryPrimitives.WriteUInt32LittleEndian(span, (uint)(_batchLength - ProtocolConstants.LengthPrefixSize));
        BinaryPrimitives.WriteUInt16LittleEndian(span[(ProtocolConstants.HeaderSize + 4)..], (ushort)_batchCount);
        _output.Advance(_batchLength);
        Bytes += _batchLength;
        Frames++;
        _batch = default;
        _batchLength = 0;
        _batchCount = 0;
    }

    private byte[] TopicUtf8(string topic)
    {
        // Topic names are the broker's interned TopicState names: one reference compare per message in the common case.
        if (ReferenceEquals(topic, _lastTopic))
        {
            return _lastTopicUtf8;
        }

        if (!_topics.TryGetValue(topic, out var utf8))
        {
            if (_topics.Count >= 4096)
            {
                _topics.Clear();
            }

            utf8 = Encoding.UTF8.GetBytes(topic);
            _topics[topic] = utf8;
        }

        _lastTopic = topic;
        _lastTopicUtf8 = utf8;
        return utf8;
    }
}
