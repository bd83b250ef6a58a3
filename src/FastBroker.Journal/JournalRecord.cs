using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using FastBroker.Journal.Internal;

namespace FastBroker.Journal;

/// <summary>
/// A view of one record, straight over the journal mapping (or any buffer holding records in journal format,
/// such as bytes received from <see cref="JournalReader.SendTo"/>). Nothing is copied: the spans point into
/// the segment, and stay valid until the next call on the reader that produced them. Until then that reader keeps the
/// segment mapped for them, also after retention deleted it (its disk blocks stay taken): a caller that stops while
/// holding a record calls <see cref="JournalReader.Park"/> (which ends the record's validity) or reads on.
/// </summary>
public readonly ref struct JournalRecord
{
    private readonly ReadOnlySpan<byte> _raw;

    internal JournalRecord(ReadOnlySpan<byte> raw) => _raw = raw;

    /// <summary>The record's position in the journal (dense: 0, 1, 2, …).</summary>
    public long Offset => Read<long>(RecordLayout.OffsetOffset);

    /// <summary>Unix time in milliseconds (non-decreasing along the journal).</summary>
    public long Timestamp => Read<long>(RecordLayout.TimestampOffset);

    /// <summary>Flag bits.</summary>
    public RecordFlags Flags => (RecordFlags)Read<ushort>(RecordLayout.FlagsOffset);

    /// <summary>The stored CRC32C.</summary>
    public uint Checksum => Read<uint>(RecordLayout.CrcOffset);

    /// <summary>The key (empty if none).</summary>
    public ReadOnlySpan<byte> Key => _raw.Slice(RecordLayout.HeaderSize, KeyLength);

    /// <summary>The header block (empty if none); see <see cref="RecordHeaderReader"/>.</summary>
    public ReadOnlySpan<byte> Headers => _raw.Slice(RecordLayout.HeaderSize + KeyLength, HeadersLength);

    /// <summary>The payload.</summary>
    public ReadOnlySpan<byte> Payload => _raw.Slice(RecordLayout.HeaderSize + KeyLength + HeadersLength);

    /// <summary>The whole record as stored, header included, without the alignment padding.</summary>
    public ReadOnlySpan<byte> Raw => _raw;

    /// <summary>Bytes the record occupies in a segment, padding included (a multiple of 8).</summary>
    public int StoredLength => RecordLayout.Align(_raw.Length);

    private int KeyLength => Read<ushort>(RecordLayout.KeyLengthOffset);

    private int HeadersLength => (int)Read<uint>(RecordLayout.HeadersLengthOffset);

    /// <summary>Recomputes the CRC32C and compares it with the stored one.</summary>
    public bool VerifyChecksum() => RecordLayout.ComputeCrc(_raw, _raw.Length) == Checksum;

    /// <summary>
    /// Parses the record at the start of <paramref name="buffer"/> (journal format, 8-byte aligned records).
    /// Returns false when the buffer does not hold a whole, structurally valid record; the checksum is checked
    /// only if <paramref name="verifyChecksum"/> is set. <paramref name="consumed"/> includes the padding.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> buffer, bool verifyChecksum, out JournalRecord record, out int consumed)
    {
        record = default;
        consumed = 0;
        if (buffer.Length < RecordLayout.HeaderSize)
        {
            return false;
        }

        var length = MemoryMarshal.Read<uint>(buffer);
        if (length < RecordLayout.HeaderSize || length > (uint)buffer.Length)
        {
            return false;
        }

        var keyLength = MemoryMarshal.Read<ushort>(buffer.Slice(RecordLayout.KeyLengthOffset));
        var headersLength = MemoryMarshal.Read<uint>(buffer.Slice(RecordLayout.HeadersLengthOffset));
        if ((ulong)keyLength + headersLength > length - RecordLayout.HeaderSize)
        {
            return false;
        }

        var candidate = new JournalRecord(buffer.Slice(0, (int)length));
        if (verifyChecksum && !candidate.VerifyChecksum())
        {
            return false;
        }

        record = candidate;
        consumed = Math.Min(buffer.Length, RecordLayout.Align((int)length));
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private T Read<T>(int offset)
        where T : unmanaged => Unsafe.ReadUnaligned<T>(ref Unsafe.AsRef(in _raw[offset]));
}
