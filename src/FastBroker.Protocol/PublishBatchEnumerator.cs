using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using FastBroker.Protocol.Internal;

namespace FastBroker.Protocol;

/// <summary>Enumerates the messages of a validated PUBLISH_BATCH without allocating.</summary>
/// <remarks>
/// Entries within one buffer segment (the usual case) are read from one span, their key, headers and payload sliced
/// from the frame by offset; entries that straddle segments are read field by field. The frame was validated whole
/// before the handler got it, so neither path checks anything again.
/// </remarks>
public ref struct PublishBatchEnumerator
{
    private readonly ReadOnlySequence<byte> _entries;
    private readonly ReadOnlySpan<byte> _span; // the entries when contiguous; else empty and _cursor reads them
    private readonly bool _contiguous;
    private FieldCursor _cursor;
    private int _pos;
    private int _index;

    internal PublishBatchEnumerator(ReadOnlySequence<byte> entries, Span<byte> scratch)
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
    public PublishBatchEntry Current { get; private set; }

    /// <summary>Moves to the next message.</summary>
    public bool MoveNext() => _contiguous ? MoveNextContiguous() : MoveNextSegmented();

    private bool MoveNextContiguous()
    {
        var s = _span;
        var pos = _pos;
        if (pos == s.Length)
        {
            return false;
        }

        var ttl = BinaryPrimitives.ReadUInt32LittleEndian(s[pos..]);
        pos += ContiguousEntries.PublishPrefix;
        ContiguousEntries.Read(_entries, s, ref pos, out var topic, out var key, out var headers, out var payload, out var block);
        _pos = pos;
        _index++;
        Current = new PublishBatchEntry { Index = _index, TtlMs = ttl, Topic = topic, Key = key, Headers = headers, Payload = payload, MessageBlock = block };
        return true;
    }

    private bool MoveNextSegmented()
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
