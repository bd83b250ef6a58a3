using System.Buffers;
using System.Diagnostics;
using FastBroker.Protocol.Internal;

namespace FastBroker.Protocol;

/// <summary>Enumerates the messages of a validated DELIVER_BATCH without allocating.</summary>
public ref struct DeliverBatchEnumerator
{
    private FieldCursor _cursor;
    private int _index;

    internal DeliverBatchEnumerator(ReadOnlySequence<byte> entries, Span<byte> scratch)
    {
        _cursor = new FieldCursor(entries, scratch);
        _index = -1;
        Current = default;
    }

    /// <summary>The current message.</summary>
    public DeliverBatchEntry Current { get; private set; }

    /// <summary>Moves to the next message.</summary>
    public bool MoveNext()
    {
        if (_cursor.Remaining == 0)
        {
            return false;
        }

        var ok = _cursor.U32("deliveryCount", out var count)
            & _cursor.U64("offset", out var offset)
            & _cursor.I64("timestampNs", out var timestamp)
            & _cursor.Str8("topic", 0, allowEmpty: false, out var topic)
            & _cursor.Message(out var key, out var headers, out var payload, out var block);
        Debug.Assert(ok, "entries were validated by the parser");
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
        return ok;
    }
}
