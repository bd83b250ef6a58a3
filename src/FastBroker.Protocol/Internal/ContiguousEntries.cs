using System.Buffers;
using System.Buffers.Binary;
using System.Text.Unicode;

namespace FastBroker.Protocol.Internal;

/// <summary>
/// PUBLISH_BATCH (and DELIVER_BATCH) entries read straight from one contiguous span: what a frame that lies within one buffer segment (the
/// common case) costs, instead of a <see cref="System.Buffers.SequenceReader{T}"/> per field. <see cref="IsValid"/>
/// accepts exactly what the field-by-field parse accepts and reports nothing: on false the caller parses the entries
/// again with <see cref="FieldCursor"/>, which names the field, the reason and the message index. <see cref="Read"/> is
/// for entries already validated. Also DELIVER_BATCH entries, whose fixed prefix is longer.
/// </summary>
internal static class ContiguousEntries
{
    /// <summary>PUBLISH_BATCH: each entry starts with ttlMs (u32, any value).</summary>
    public const int PublishPrefix = 4;

    /// <summary>DELIVER_BATCH: each entry starts with deliveryCount (u32, not 0), offset (u64) and timestampNs (i64).</summary>
    public const int DeliverPrefix = 20;

    /// <summary>
    /// True when <paramref name="entries"/> holds exactly <paramref name="count"/> valid entries, each <paramref name="prefix"/>
    /// fixed bytes (<see cref="PublishPrefix"/> or <see cref="DeliverPrefix"/>, whose deliveryCount must not be 0), then
    /// topic (str8, non-empty, UTF-8), key (bytes16), headers (u32 length, entries) and payload (bytes32).
    /// </summary>
    public static bool IsValid(ReadOnlySpan<byte> entries, int count, int prefix)
    {
        var pos = 0;
        for (var i = 0; i < count; i++)
        {
            if (entries.Length - pos < prefix + 1 || (prefix == DeliverPrefix && BinaryPrimitives.ReadUInt32LittleEndian(entries[pos..]) == 0))
            {
                return false;
            }

            int topic = entries[pos + prefix];
            pos += prefix + 1;
            if (topic == 0 || entries.Length - pos < topic || !Utf8.IsValid(entries.Slice(pos, topic)))
            {
                return false;
            }

            pos += topic;
            if (!Skip16(entries, ref pos) || !Skip32(entries, ref pos, out var headers) || (headers.Length > 0 && !HeadersValid(headers)) || !Skip32(entries, ref pos, out _))
            {
                return false;
            }
        }

        return pos == entries.Length;
    }

    /// <summary>
    /// The topic and message block of a validated entry at <paramref name="pos"/> (past its fixed prefix) in
    /// <paramref name="s"/>, the contiguous span of <paramref name="entries"/>; moves <paramref name="pos"/> past it.
    /// </summary>
    public static void Read(scoped in ReadOnlySequence<byte> entries, ReadOnlySpan<byte> s, scoped ref int pos, out ReadOnlySpan<byte> topic, out ReadOnlySequence<byte> key, out HeaderBlock headers, out ReadOnlySequence<byte> payload, out ReadOnlySequence<byte> block)
    {
        int topicLength = s[pos];
        topic = s.Slice(pos + 1, topicLength);
        pos += 1 + topicLength;
        var blockStart = pos;
        var keyLength = Length16(s, ref pos);
        key = entries.Slice(pos, keyLength);
        pos += keyLength;
        var headerLength = Length32(s, ref pos);
        headers = new HeaderBlock(entries.Slice(pos, headerLength), headerLength == 0 ? 0 : CountHeaders(s.Slice(pos, headerLength)));
        pos += headerLength;
        var payloadLength = Length32(s, ref pos);
        payload = entries.Slice(pos, payloadLength);
        pos += payloadLength;
        block = entries.Slice(blockStart, pos - blockStart);
    }

    /// <summary>Header entries (str8 name, non-empty, UTF-8; bytes16 value) filling <paramref name="block"/> exactly.</summary>
    private static bool HeadersValid(ReadOnlySpan<byte> block)
    {
        var pos = 0;
        while (pos < block.Length)
        {
            int name = block[pos++];
            if (name == 0 || block.Length - pos < name || !Utf8.IsValid(block.Slice(pos, name)))
            {
                return false;
            }

            pos += name;
            if (!Skip16(block, ref pos))
            {
                return false;
            }
        }

        return true;
    }

    private static bool Skip16(ReadOnlySpan<byte> s, ref int pos)
    {
        if (s.Length - pos < 2)
        {
            return false;
        }

        int length = BinaryPrimitives.ReadUInt16LittleEndian(s[pos..]);
        pos += 2;
        if (s.Length - pos < length)
        {
            return false;
        }

        pos += length;
        return true;
    }

    private static bool Skip32(ReadOnlySpan<byte> s, ref int pos, out ReadOnlySpan<byte> value)
    {
        value = default;
        if (s.Length - pos < 4)
        {
            return false;
        }

        var length = BinaryPrimitives.ReadUInt32LittleEndian(s[pos..]);
        pos += 4;
        if ((uint)(s.Length - pos) < length)
        {
            return false;
        }

        value = s.Slice(pos, (int)length);
        pos += (int)length;
        return true;
    }

    /// <summary>The entries of a validated header block.</summary>
    private static int CountHeaders(ReadOnlySpan<byte> block)
    {
        var count = 0;
        var pos = 0;
        while (pos < block.Length)
        {
            pos += 1 + block[pos];
            pos += 2 + BinaryPrimitives.ReadUInt16LittleEndian(block[pos..]);
            count++;
        }

        return count;
    }

    /// <summary>A validated u16 length at <paramref name="pos"/>, moved past.</summary>
    private static int Length16(ReadOnlySpan<byte> s, ref int pos)
    {
        int length = BinaryPrimitives.ReadUInt16LittleEndian(s[pos..]);
        pos += 2;
        return length;
    }

    /// <summary>A validated u32 length at <paramref name="pos"/>, moved past.</summary>
    private static int Length32(ReadOnlySpan<byte> s, ref int pos)
    {
        var length = (int)BinaryPrimitives.ReadUInt32LittleEndian(s[pos..]);
        pos += 4;
        return length;
    }
}
