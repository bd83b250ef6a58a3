using System.Buffers.Binary;
using FastBroker.Protocol.Internal;

namespace FastBroker.Protocol;

/// <summary>
/// Encodes header entries (<c>u8 nameLength, name, u16 valueLength, value</c>) into a caller's buffer; pass
/// <see cref="WrittenSpan"/> as the <c>headers</c> argument of the frame writers. Allocation-free.
/// </summary>
public ref struct HeaderBlockWriter
{
    private readonly Span<byte> _destination;
    private int _written;

    /// <summary>Writes into <paramref name="destination"/>.</summary>
    public HeaderBlockWriter(Span<byte> destination)
    {
        _destination = destination;
        _written = 0;
        Count = 0;
    }

    /// <summary>Entries written.</summary>
    public int Count { get; private set; }

    /// <summary>Bytes written.</summary>
    public readonly int BytesWritten => _written;

    /// <summary>The encoded entries so far.</summary>
    public readonly ReadOnlySpan<byte> WrittenSpan => _destination[.._written];

    /// <summary>Encoded size of one entry.</summary>
    public static int GetEntryLength(int nameLength, int valueLength) => 1 + nameLength + 2 + valueLength;

    /// <summary>Adds an entry; false (nothing written) when the buffer is full.</summary>
    /// <exception cref="ArgumentException">The name is empty or longer than 255 bytes, or the value longer than 65535.</exception>
    public bool TryAdd(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        Check.Name(name, nameof(name), allowEmpty: false);
        Check.Short(value, nameof(value));
        var length = GetEntryLength(name.Length, value.Length);
        if (_destination.Length - _written < length)
        {
            return false;
        }

        var span = _destination[_written..];
        span[0] = (byte)name.Length;
        name.CopyTo(span[1..]);
        BinaryPrimitives.WriteUInt16LittleEndian(span[(1 + name.Length)..], (ushort)value.Length);
        value.CopyTo(span[(3 + name.Length)..]);
        _written += length;
        Count++;
        return true;
    }
}
