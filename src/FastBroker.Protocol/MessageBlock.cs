using System.Buffers.Binary;
using FastBroker.Protocol.Internal;

namespace FastBroker.Protocol;

/// <summary>
/// The message block: <c>u16 keyLength, key, u32 headersLength, header entries, u32 payloadLength, payload</c>.
/// PUBLISH carries it and DELIVER carries it back unchanged, so a journal that stores it as the record body lets
/// the server deliver by copying one contiguous range from the mapping (docs/protocol.md, "Message block").
/// </summary>
public static class MessageBlock
{
    /// <summary>Fixed bytes of a message block: the three length fields.</summary>
    public const int FixedLength = 2 + 4 + 4;

    /// <summary>Encoded size of a block with these field lengths.</summary>
    public static long GetLength(int keyLength, int headersLength, int payloadLength)
        => FixedLength + (long)keyLength + headersLength + payloadLength;

    /// <summary>Writes a block into <paramref name="destination"/>; returns the bytes written.</summary>
    /// <exception cref="ArgumentException">The destination is too small or the key longer than 65535 bytes.</exception>
    public static int Write(Span<byte> destination, ReadOnlySpan<byte> key, ReadOnlySpan<byte> headers, ReadOnlySpan<byte> payload)
    {
        var length = Check.Message(key, headers, payload);
        if (length > destination.Length)
        {
            ThrowHelper.ThrowTooLong(nameof(destination), destination.Length, (int)Math.Min(length, int.MaxValue));
        }

        BinaryPrimitives.WriteUInt16LittleEndian(destination, (ushort)key.Length);
        key.CopyTo(destination[2..]);
        var pos = 2 + key.Length;
        BinaryPrimitives.WriteUInt32LittleEndian(destination[pos..], (uint)headers.Length);
        headers.CopyTo(destination[(pos + 4)..]);
        pos += 4 + headers.Length;
        BinaryPrimitives.WriteUInt32LittleEndian(destination[pos..], (uint)payload.Length);
        payload.CopyTo(destination[(pos + 4)..]);
        return (int)length;
    }
}
