using System.Buffers;
using System.Diagnostics;
using FastBroker.Protocol.Internal;

namespace FastBroker.Protocol;

/// <summary>Enumerates the messages of a validated PUBLISH_BATCH without allocating.</summary>
public ref struct PublishBatchEnumerator
{
    private FieldCursor _cursor;
    private int _index;

    internal PublishBatchEnumerator(ReadOnlySequence<byte> entries, Span<byte> scratch)
    {
        _cursor = new FieldCursor(entries, scratch);
        _index = -1;
        Current = default;
    }

    /// <summary>The current message.</summary>
    public PublishBatchEntry Current { get; private set; }

    /// <summary>Moves to the next message.</summary>
    public bool MoveNext()
    {
        if (_cursor.Remaining == 0)
        {
            return false;
        }

        var ok = _cursor.U32("ttlMs", out var ttl)
            & _cursor.Str8("topic", 0, allowEmpty: false, out var topic)
            & _cursor.Message(out var key, out var headers, out var payload, out var block);
        Debug.Assert(ok, "entries were validated by the parser");
        _index++;
        Current = new PublishBatchEntry { Index = _index, TtlMs = ttl, Topic = topic, Key = key, Headers = headers, Payload = payload, MessageBlock = block };
        return ok;
    }
}
