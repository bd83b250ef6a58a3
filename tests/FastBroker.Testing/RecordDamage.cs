using System.Buffers.Binary;

namespace FastBroker.Testing;

/// <summary>
/// Damages one record of a journal segment on disk the way bit rot does: one payload byte flipped, its length word and
/// offset intact, so its CRC32C no longer matches. For tests of what readers do at a damaged record of a sealed segment
/// an open trusted.
/// </summary>
public static class RecordDamage
{
    /// <summary>The byte size of a segment file's header (the first record starts there).</summary>
    public const int SegmentHeaderBytes = 128;

    /// <summary>
    /// Flips the last byte of record number <paramref name="recordIndex"/> (0-based) of the segment file that is
    /// <paramref name="segmentIndex"/>-th in name order in <paramref name="journalDirectory"/>.
    /// </summary>
    /// <returns>The segment file, the damaged record's offset and its byte position in the file.</returns>
    public static (string Segment, long Offset, long Position) FlipPayloadByte(string journalDirectory, int segmentIndex, int recordIndex)
    {
        var (segment, file, bytes, position, offset) = Open(journalDirectory, segmentIndex, recordIndex);
        using var owned = file;
        var last = position + BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(position)) - 1;
        file.Position = last;
        file.WriteByte((byte)(bytes[last] ^ 0x10));
        file.Flush(flushToDisk: true);
        return (segment, offset, position);
    }

    /// <summary>
    /// Zeroes the length word of record number <paramref name="recordIndex"/> (0-based) of the segment file that is
    /// <paramref name="segmentIndex"/>-th in name order in <paramref name="journalDirectory"/>: a zero length word among
    /// the segment's records, where readers would take the records to end.
    /// </summary>
    /// <returns>The segment file, the damaged record's offset and its byte position in the file.</returns>
    public static (string Segment, long Offset, long Position) ZeroLengthWord(string journalDirectory, int segmentIndex, int recordIndex)
    {
        var (segment, file, _, position, offset) = Open(journalDirectory, segmentIndex, recordIndex);
        using var owned = file;
        file.Position = position;
        file.Write(new byte[4]);
        file.Flush(flushToDisk: true);
        return (segment, offset, position);
    }

    /// <summary>
    /// Zeroes <paramref name="count"/> whole records from record number <paramref name="recordIndex"/> (0-based) of the
    /// segment file that is <paramref name="segmentIndex"/>-th in name order in <paramref name="journalDirectory"/>: a
    /// long unreadable stretch (a lost run of pages) whose length words say nothing of where its records lay.
    /// </summary>
    /// <returns>The segment file, the first zeroed record's offset, and the byte positions where the stretch starts and ends.</returns>
    public static (string Segment, long Offset, long Position, long End) ZeroRecords(string journalDirectory, int segmentIndex, int recordIndex, int count)
    {
        var (segment, file, bytes, position, offset) = Open(journalDirectory, segmentIndex, recordIndex);
        using var owned = file;
        var end = position;
        for (var n = 0; n < count; n++)
        {
            end += (BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(end)) + 7) & ~7;
        }

        file.Position = position;
        file.Write(new byte[end - position]);
        file.Flush(flushToDisk: true);
        return (segment, offset, position, end);
    }

    /// <summary>
    /// Opens the segment file that is <paramref name="segmentIndex"/>-th in name order in <paramref name="journalDirectory"/>
    /// for writing (a node may hold it open), reads it whole, and finds record number <paramref name="recordIndex"/> (0-based)
    /// by its records' length words: its byte position and its offset.
    /// </summary>
    private static (string Segment, FileStream File, byte[] Bytes, int Position, long Offset) Open(string journalDirectory, int segmentIndex, int recordIndex)
    {
        var segment = Directory.GetFiles(journalDirectory, "*.seg").Order(StringComparer.Ordinal).ToArray()[segmentIndex];
        var file = new FileStream(segment, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
        var bytes = new byte[file.Length];
        file.ReadExactly(bytes);
        var position = SegmentHeaderBytes;
        for (var n = 0; n < recordIndex; n++)
        {
            position += (BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(position)) + 7) & ~7;
        }

        return (segment, file, bytes, position, BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(position + 8)));
    }
}
