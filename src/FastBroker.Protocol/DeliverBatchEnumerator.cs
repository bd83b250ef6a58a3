using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using FastBroker.Protocol.Internal;

namespace FastBroker.Protocol;

/// <summary>Enumerates the messages of a validated DELIVER_BATCH without allocating.</summary>
/// <remarks>
/// Entries within one buffer segment (the usual case) are read from one span, their key, headers and payload sliced
/// from the frame by offset; entries that straddle segments are read field by field. The frame was validated whole
/// before the handler got it, so neither path checks anything again.
/// </remarks>
public ref struct DeliverBatchEnumerator
{
    private readonly ReadOnlySequence<byte> _entries;
    private readonly ReadOnlySpan<byte> _span; // the entries when contiguous; else empty and _cursor reads them
    private readonly bool _contiguous;
    private FieldCursor _cursor;
    private int _pos;
    private int _index;

    internal DeliverBatchEnumerator(ReadOnlySequence<byte> entries, Span<byte> scratch)
    {
        _entries = entries;
        _contiguous = entries.IsSingleSegment;
        _span = _contiguous ? entries.FirstSpan : default;
        _cursor = _contiguous ? default : new FieldCursor(entries, scratch);
        _pos = 0;
        _index = -1;
        Current = default;
    }

    /// <summary>The current message.</summary>
    public DeliverBatchEntry Current { get; private set; }

    /// <summary>Moves to the next message.</summary>
    public bool MoveNext()
    {
        uint count;
        ulong offset;
        long timestamp;
        ReadOnlySpan<byte> topic;
        ReadOnlySequence<byte> key, payload, block;
        HeaderBlock headers;
        if (_contiguous)
        {
            var s = _span;
            var pos = _pos;
            if (pos == s.Length)
            {
                return false;
            }

            count = BinaryPrimitives.ReadUInt32LittleEndian(s[pos..]);
            offset = BinaryPrimitives.ReadUInt64LittleEndian(s[(pos + 4)..]);
            timestamp = BinaryPrimitives.ReadInt64LittleEndian(s[(pos + 12)..]);
            pos += ContiguousEntries.DeliverPrefix;
            ContiguousEntries.Read(_entries, s, ref pos, out topic, out key, out headers, out payload, out block);
            _pos = pos;
        }
        else
        {
            if (_cursor.Remaining == 0)
            {
                return false;
            }

            var ok = _cursor.U32("deliveryCount", out count)
                & _cursor.U64("offset", out offset)
                & _cursor.I64("timestampNs", out timestamp)
                & _cursor.Str8("topic", 0, allowEmpty: false, out topic)
                & _cursor.Message(out key, out headers, out payload, out block);
            Debug.Assert(ok, "entries were validated by the parser");
        }

        _index++;
        Current = new DeliverBatchEntry
        {
            Index = _index,
            DeliveryCount = count,
            Offset = offset,
            TimestampNs = timestamp,
            Topic = topic,
            Key = key,
            Headers = headers,
            Payload = payload,
            MessageBlock = block,
        };
        return true;
    }
}
