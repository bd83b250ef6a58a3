using System.Buffers.Binary;
using System.Text.Unicode;

namespace FastBroker.Protocol.Internal;

/// <summary>
/// PUBLISH_BATCH entries read straight from one contiguous span: what a frame that lies within one buffer segment (the
/// common case) costs, instead of a <see cref="System.Buffers.SequenceReader{T}"/> per field. <see cref="IsValid"/>
/// accepts exactly what the field-by-field parse accepts and reports nothing: on false the caller parses the entries
/// again with <see cref="FieldCursor"/>, which names the field, the reason and the message index. The readers after it
/// are for entries already validated.
/// </summary>
internal static class ContiguousEntries
{
    /// <summary>True when <paramref name="entries"/> holds exactly <paramref name="count"/> valid entries.</summary>
    public static bool IsValid(ReadOnlySpan<byte> entries, int count)
    {
        var pos = 0;
        for (var i = 0; i < count; i++)
        {
            // ttlMs u32, topic str8 (non-empty, UTF-8), key bytes16, headers (u32 length, entries), payload bytes32.
            if (entries.Length - pos < 5)
            {
                return false;
            }

            int topic = entries[pos + 4];
            pos += 5;
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
    public static int CountHeaders(ReadOnlySpan<byte> block)
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
    public static int Length16(ReadOnlySpan<byte> s, ref int pos)
    {
        int length = BinaryPrimitives.ReadUInt16LittleEndian(s[pos..]);
        pos += 2;
        return length;
    }

    /// <summary>A validated u32 length at <paramref name="pos"/>, moved past.</summary>
    public static int Length32(ReadOnlySpan<byte> s, ref int pos)
    {
        var length = (int)BinaryPrimitives.ReadUInt32LittleEndian(s[pos..]);
        pos += 4;
        return length;
    }
}
