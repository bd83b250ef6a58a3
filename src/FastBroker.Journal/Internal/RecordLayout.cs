using System.Runtime.CompilerServices;

namespace FastBroker.Journal.Internal;

/// <summary>
/// Byte layout of one record (little-endian; see docs/journal-format.md). Records start 8-byte aligned so
/// that the header fields are naturally aligned loads on every architecture.
/// </summary>
internal static class RecordLayout
{
    internal const int HeaderSize = 32;
    internal const int LengthOffset = 0;
    internal const int CrcOffset = 4;
    internal const int OffsetOffset = 8;
    internal const int TimestampOffset = 16;
    internal const int FlagsOffset = 24;
    internal const int KeyLengthOffset = 26;
    internal const int HeadersLengthOffset = 28;
    internal const int Alignment = 8;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int Align(int length) => (length + (Alignment - 1)) & ~(Alignment - 1);

    /// <summary>The checksum covers the length field and everything after the checksum field, up to <paramref name="length"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static uint ComputeCrc(ReadOnlySpan<byte> record, int length)
    {
        var crc = Crc32C.Update(0xFFFFFFFFu, record.Slice(0, 4));
        return ~Crc32C.Update(crc, record.Slice(OffsetOffset, length - OffsetOffset));
    }

    /// <summary>
    /// Checks the record at <paramref name="position"/>: structure always, checksum when asked. A zero length
    /// word is the clean end of the written part of a segment.
    /// </summary>
    internal static RecordStatus Check(ReadOnlySpan<byte> segment, int position, int limit, long expectedOffset, bool verifyCrc, out int length)
    {
        length = 0;
        if (position + HeaderSize > limit)
        {
            return position + 4 <= limit && Unsafe.ReadUnaligned<uint>(ref Unsafe.AsRef(in segment[position])) != 0
                ? RecordStatus.BadLength
                : RecordStatus.End;
        }

        var record = segment.Slice(position);
        var len = Unsafe.ReadUnaligned<uint>(ref Unsafe.AsRef(in record[LengthOffset]));
        if (len == 0)
        {
            return RecordStatus.End;
        }

        if (len < HeaderSize || len > (uint)(limit - position))
        {
            return RecordStatus.BadLength;
        }

        length = (int)len;
        var keyLength = Unsafe.ReadUnaligned<ushort>(ref Unsafe.AsRef(in record[KeyLengthOffset]));
        var headersLength = Unsafe.ReadUnaligned<uint>(ref Unsafe.AsRef(in record[HeadersLengthOffset]));
        if ((ulong)keyLength + headersLength > (ulong)(length - HeaderSize))
        {
            return RecordStatus.BadLength;
        }

        if (Unsafe.ReadUnaligned<long>(ref Unsafe.AsRef(in record[OffsetOffset])) != expectedOffset)
        {
            return verifyCrc && ComputeCrc(record, length) != Unsafe.ReadUnaligned<uint>(ref Unsafe.AsRef(in record[CrcOffset]))
                ? RecordStatus.BadChecksum
                : RecordStatus.BadOffset;
        }

        if (verifyCrc && ComputeCrc(record, length) != Unsafe.ReadUnaligned<uint>(ref Unsafe.AsRef(in record[CrcOffset])))
        {
            return RecordStatus.BadChecksum;
        }

        return RecordStatus.Ok;
    }

    internal static string Describe(RecordStatus status) => status switch
    {
        RecordStatus.BadLength => "bad record length",
        RecordStatus.BadOffset => "record offset out of sequence",
        RecordStatus.BadChecksum => "CRC32C mismatch",
        RecordStatus.End => "end of data",
        _ => "ok",
    };
}
