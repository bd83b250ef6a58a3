using System.Buffers.Binary;

namespace FastBroker.Journal;

/// <summary>
/// Walks a record's header block: repeated <c>[u16 nameLength][name][u32 valueLength][value]</c>, little-endian.
/// The journal treats the block as opaque bytes; this is the convention the broker and the CLI use.
/// </summary>
public ref struct RecordHeaderReader
{
    private ReadOnlySpan<byte> _remaining;

    /// <summary>Starts at the beginning of <paramref name="headers"/>.</summary>
    public RecordHeaderReader(ReadOnlySpan<byte> headers) => _remaining = headers;

    /// <summary>True when every byte of the block has been consumed.</summary>
    public readonly bool End => _remaining.IsEmpty;

    /// <summary>Reads the next header; false at the end or when the block is malformed.</summary>
    public bool TryReadNext(out ReadOnlySpan<byte> name, out ReadOnlySpan<byte> value)
    {
        name = default;
        value = default;
        if (_remaining.Length < 2)
        {
            return false;
        }

        int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(_remaining);
        if (_remaining.Length < 2 + nameLength + 4)
        {
            return false;
        }

        var valueLength = BinaryPrimitives.ReadUInt32LittleEndian(_remaining.Slice(2 + nameLength));
        if (valueLength > (uint)(_remaining.Length - 6 - nameLength))
        {
            return false;
        }

        name = _remaining.Slice(2, nameLength);
        value = _remaining.Slice(6 + nameLength, (int)valueLength);
        _remaining = _remaining.Slice(6 + nameLength + (int)valueLength);
        return true;
    }

    /// <summary>Bytes one header takes in the block.</summary>
    public static int SizeOf(int nameLength, int valueLength) => 6 + nameLength + valueLength;

    /// <summary>Writes one header into <paramref name="destination"/>; returns the bytes written.</summary>
    /// <exception cref="ArgumentException">The name is longer than 65535 bytes or the destination is too small.</exception>
    public static int Write(Span<byte> destination, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        if (name.Length > ushort.MaxValue)
        {
            throw new ArgumentException("A header name is at most 65535 bytes.", nameof(name));
        }

        var size = SizeOf(name.Length, value.Length);
        if (destination.Length < size)
        {
            throw new ArgumentException("Destination too small for the header.", nameof(destination));
        }

        BinaryPrimitives.WriteUInt16LittleEndian(destination, (ushort)name.Length);
        name.CopyTo(destination.Slice(2));
        BinaryPrimitives.WriteUInt32LittleEndian(destination.Slice(2 + name.Length), (uint)value.Length);
        value.CopyTo(destination.Slice(6 + name.Length));
        return size;
    }
}
