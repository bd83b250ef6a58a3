using System.Buffers.Binary;

namespace FastBroker.Journal;

/// <summary>
/// Walks a record's header block: repeated <c>[u8 nameLength][name][u16 valueLength][value]</c>, little-endian —
/// byte for byte the header entries of the wire protocol (docs/protocol.md), so the server stores and delivers a
/// block without re-encoding it. The journal treats the block as opaque bytes; this is the convention the broker,
/// the server and the CLI use.
/// </summary>
public ref struct RecordHeaderReader
{
    /// <summary>Longest header name, in bytes.</summary>
    public const int MaxNameLength = 255;

    /// <summary>Longest header value, in bytes.</summary>
    public const int MaxValueLength = ushort.MaxValue;

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
        if (_remaining.Length < 1)
        {
            return false;
        }

        int nameLength = _remaining[0];
        if (_remaining.Length < 1 + nameLength + 2)
        {
            return false;
        }

        int valueLength = BinaryPrimitives.ReadUInt16LittleEndian(_remaining.Slice(1 + nameLength));
        if (valueLength > _remaining.Length - 3 - nameLength)
        {
            return false;
        }

        name = _remaining.Slice(1, nameLength);
        value = _remaining.Slice(3 + nameLength, valueLength);
        _remaining = _remaining.Slice(3 + nameLength + valueLength);
        return true;
    }

    /// <summary>Bytes one header takes in the block.</summary>
    public static int SizeOf(int nameLength, int valueLength) => 3 + nameLength + valueLength;

    /// <summary>Writes one header into <paramref name="destination"/>; returns the bytes written.</summary>
    /// <exception cref="ArgumentException">The name is empty or longer than 255 bytes, the value longer than 65535 bytes, or the destination is too small.</exception>
    public static int Write(Span<byte> destination, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        if (name.Length is 0 or > MaxNameLength)
        {
            throw new ArgumentException("A header name is 1 to 255 bytes.", nameof(name));
        }

        if (value.Length > MaxValueLength)
        {
            throw new ArgumentException("A header value is at most 65535 bytes.", nameof(value));
        }

        var size = SizeOf(name.Length, value.Length);
        if (destination.Length < size)
        {
            throw new ArgumentException("Destination too small for the header.", nameof(destination));
        }

        destination[0] = (byte)name.Length;
        name.CopyTo(destination.Slice(1));
        BinaryPrimitives.WriteUInt16LittleEndian(destination.Slice(1 + name.Length), (ushort)value.Length);
        value.CopyTo(destination.Slice(3 + name.Length));
        return size;
    }
}
