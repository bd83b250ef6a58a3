using System.Buffers.Binary;

namespace FastBroker.Journal.Internal;

/// <summary>
/// The <c>.idx</c> file next to a sealed segment: header (magic "FBJIDX01", u32 version, u32 count, i64 base
/// offset, i32 segment end position, u32 reserved), <c>count</c> 16-byte entries (relative offset, position, newest
/// timestamp so far: <see cref="SparseIndex"/>), then a CRC32C of everything before it. Written once when the segment is sealed; rebuilt from the segment when missing or damaged.
/// </summary>
internal static class IndexFile
{
    private const ulong Magic = 0x31305844494A4246UL; // "FBJIDX01"
    private const int HeaderLength = 32;

    /// <summary>The layout this code writes and reads; an index of another version is never used (it is rebuilt).</summary>
    private const uint Version = 1;

    internal static string PathFor(string segmentPath) => Path.ChangeExtension(segmentPath, ".idx");

    internal static void Write(string path, long baseOffset, int endPosition, ReadOnlySpan<IndexEntry> entries)
    {
        var bytes = new byte[HeaderLength + (entries.Length * 16) + 4];
        var span = bytes.AsSpan();
        BinaryPrimitives.WriteUInt64LittleEndian(span, Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(span.Slice(8), Version);
        BinaryPrimitives.WriteInt32LittleEndian(span.Slice(12), entries.Length);
        BinaryPrimitives.WriteInt64LittleEndian(span.Slice(16), baseOffset);
        BinaryPrimitives.WriteInt32LittleEndian(span.Slice(24), endPosition);
        for (var i = 0; i < entries.Length; i++)
        {
            var e = span.Slice(HeaderLength + (i * 16));
            BinaryPrimitives.WriteInt32LittleEndian(e, entries[i].RelativeOffset);
            BinaryPrimitives.WriteInt32LittleEndian(e.Slice(4), entries[i].Position);
            BinaryPrimitives.WriteInt64LittleEndian(e.Slice(8), entries[i].Timestamp);
        }

        BinaryPrimitives.WriteUInt32LittleEndian(span.Slice(bytes.Length - 4), Crc32C.Compute(span.Slice(0, bytes.Length - 4)));
        var temp = path + ".tmp";
        File.WriteAllBytes(temp, bytes);
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>Loads and validates an index; null when missing, damaged, of another version or inconsistent with the segment.</summary>
    internal static IndexEntry[]? TryRead(string path, long baseOffset, int endPosition, int recordCount)
    {
        byte[] bytes;
        try
        {
            if (!File.Exists(path))
            {
                return null;
            }

            bytes = File.ReadAllBytes(path);
        }
        catch (IOException)
        {
            return null;
        }

        var span = bytes.AsSpan();
        if (span.Length < HeaderLength + 4
            || BinaryPrimitives.ReadUInt64LittleEndian(span) != Magic
            || BinaryPrimitives.ReadUInt32LittleEndian(span.Slice(8)) != Version
            || BinaryPrimitives.ReadUInt32LittleEndian(span.Slice(span.Length - 4)) != Crc32C.Compute(span.Slice(0, span.Length - 4)))
        {
            return null;
        }

        var count = BinaryPrimitives.ReadInt32LittleEndian(span.Slice(12));
        if (count < 0 || span.Length != HeaderLength + (count * 16) + 4
            || BinaryPrimitives.ReadInt64LittleEndian(span.Slice(16)) != baseOffset
            || BinaryPrimitives.ReadInt32LittleEndian(span.Slice(24)) != endPosition)
        {
            return null;
        }

        var entries = new IndexEntry[count];
        var previous = new IndexEntry(-1, -1, long.MinValue);
        for (var i = 0; i < count; i++)
        {
            var e = span.Slice(HeaderLength + (i * 16));
            var entry = new IndexEntry(BinaryPrimitives.ReadInt32LittleEndian(e), BinaryPrimitives.ReadInt32LittleEndian(e.Slice(4)), BinaryPrimitives.ReadInt64LittleEndian(e.Slice(8)));
            if (entry.RelativeOffset <= previous.RelativeOffset || entry.Position <= previous.Position || entry.Timestamp < previous.Timestamp
                || entry.RelativeOffset >= recordCount || entry.Position >= endPosition)
            {
                return null;
            }

            entries[i] = previous = entry;
        }

        return count > 0 || recordCount == 0 ? entries : null;
    }
}
