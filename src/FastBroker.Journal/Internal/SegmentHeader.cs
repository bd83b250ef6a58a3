using System.Buffers.Binary;

namespace FastBroker.Journal.Internal;

/// <summary>
/// The 128-byte segment header (docs/journal-format.md): an identity block written once at creation
/// (bytes 0–63, own CRC) and a seal trailer written once when the segment is complete and synced
/// (bytes 64–127, own CRC). Two blocks so that a torn seal write can never damage the identity.
/// </summary>
internal readonly record struct SegmentHeader(long Epoch, long BaseOffset, int SegmentSize, long CreatedUnixMs)
{
    internal const int Size = 128;
    internal const ulong Magic = 0x4745534E524A4246UL; // "FBJRNSEG"
    internal const ushort FormatVersion = 1;
    internal const uint SealMagic = 0x4C414553u; // "SEAL"

    /// <summary>
    /// Seal flag (bytes 76–79, bit 0): the seal's last timestamp is at least the newest timestamp of the segment's
    /// records, and the entries of the index file written with it carry the newest timestamp up to their record. Every
    /// seal this version writes has it; a seal an older version wrote (those bytes were reserved, zero) may understate
    /// its newest record (docs/journal-format.md, "Timestamps out of order").
    /// </summary>
    internal const uint SealFlagNewestTimestamp = 1;

    internal void Write(Span<byte> header)
    {
        header.Slice(0, 64).Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(header, Magic);
        BinaryPrimitives.WriteUInt16LittleEndian(header.Slice(8), FormatVersion);
        BinaryPrimitives.WriteUInt16LittleEndian(header.Slice(10), Size);
        BinaryPrimitives.WriteInt64LittleEndian(header.Slice(16), Epoch);
        BinaryPrimitives.WriteInt64LittleEndian(header.Slice(24), BaseOffset);
        BinaryPrimitives.WriteInt32LittleEndian(header.Slice(32), SegmentSize);
        BinaryPrimitives.WriteInt64LittleEndian(header.Slice(40), CreatedUnixMs);
        BinaryPrimitives.WriteUInt32LittleEndian(header.Slice(60), Crc32C.Compute(header.Slice(0, 60)));
    }

    /// <summary>Validates the identity block; <paramref name="error"/> says what is wrong (null when all bytes are zero).</summary>
    internal static bool TryRead(ReadOnlySpan<byte> header, out SegmentHeader result, out string? error, out bool unsupported)
    {
        result = default;
        unsupported = false;
        if (header.Length < Size)
        {
            error = header.IndexOfAnyExcept((byte)0) < 0 ? null : $"file shorter than the {Size}-byte header";
            return false;
        }

        if (header.Slice(0, 64).IndexOfAnyExcept((byte)0) < 0)
        {
            error = null;
            return false;
        }

        if (BinaryPrimitives.ReadUInt64LittleEndian(header) != Magic)
        {
            error = "bad segment magic";
            unsupported = true;
            return false;
        }

        if (BinaryPrimitives.ReadUInt32LittleEndian(header.Slice(60)) != Crc32C.Compute(header.Slice(0, 60)))
        {
            error = "segment header CRC32C mismatch";
            return false;
        }

        var version = BinaryPrimitives.ReadUInt16LittleEndian(header.Slice(8));
        if (version != FormatVersion || BinaryPrimitives.ReadUInt16LittleEndian(header.Slice(10)) != Size)
        {
            error = $"unsupported segment format version {version}";
            unsupported = true;
            return false;
        }

        result = new SegmentHeader(
            BinaryPrimitives.ReadInt64LittleEndian(header.Slice(16)),
            BinaryPrimitives.ReadInt64LittleEndian(header.Slice(24)),
            BinaryPrimitives.ReadInt32LittleEndian(header.Slice(32)),
            BinaryPrimitives.ReadInt64LittleEndian(header.Slice(40)));
        if (result.SegmentSize < Size + RecordLayout.HeaderSize || result.SegmentSize > (1 << 30))
        {
            error = $"implausible segment size {result.SegmentSize}";
            return false;
        }

        error = null;
        return true;
    }

    /// <summary>The identity block (bytes 0–63) is all zeros: never stamped, or its page never reached the disk.</summary>
    internal static bool IsBlankIdentity(ReadOnlySpan<byte> header) => header.Slice(0, 64).IndexOfAnyExcept((byte)0) < 0;

    /// <summary>Writes the seal trailer; <paramref name="flags"/> is <see cref="SealFlagNewestTimestamp"/> for every seal this version writes.</summary>
    internal static void WriteSeal(Span<byte> header, int recordCount, int endPosition, long lastTimestamp, long sealedUnixMs, uint flags)
    {
        var seal = header.Slice(64, 64);
        seal.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(seal, SealMagic);
        BinaryPrimitives.WriteInt32LittleEndian(seal.Slice(4), recordCount);
        BinaryPrimitives.WriteInt32LittleEndian(seal.Slice(8), endPosition);
        BinaryPrimitives.WriteUInt32LittleEndian(seal.Slice(12), flags);
        BinaryPrimitives.WriteInt64LittleEndian(seal.Slice(16), lastTimestamp);
        BinaryPrimitives.WriteInt64LittleEndian(seal.Slice(24), sealedUnixMs);
        BinaryPrimitives.WriteUInt32LittleEndian(seal.Slice(60), Crc32C.Compute(seal.Slice(0, 60)));
    }

    internal static bool TryReadSeal(ReadOnlySpan<byte> header, out int recordCount, out int endPosition, out long lastTimestamp)
    {
        recordCount = 0;
        endPosition = 0;
        lastTimestamp = 0;
        var seal = header.Slice(64, 64);
        if (BinaryPrimitives.ReadUInt32LittleEndian(seal) != SealMagic
            || BinaryPrimitives.ReadUInt32LittleEndian(seal.Slice(60)) != Crc32C.Compute(seal.Slice(0, 60)))
        {
            return false;
        }

        recordCount = BinaryPrimitives.ReadInt32LittleEndian(seal.Slice(4));
        endPosition = BinaryPrimitives.ReadInt32LittleEndian(seal.Slice(8));
        lastTimestamp = BinaryPrimitives.ReadInt64LittleEndian(seal.Slice(16));
        return recordCount >= 0 && endPosition >= Size;
    }

    /// <summary>
    /// A valid seal trailer (<see cref="TryReadSeal"/>) that has <see cref="SealFlagNewestTimestamp"/>: its last timestamp
    /// bounds every record of the segment. False for a seal an older version wrote.
    /// </summary>
    internal static bool SealBoundsNewest(ReadOnlySpan<byte> header) =>
        (BinaryPrimitives.ReadUInt32LittleEndian(header.Slice(76)) & SealFlagNewestTimestamp) != 0;
}
