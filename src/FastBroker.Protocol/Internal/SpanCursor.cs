using System.Buffers.Binary;

namespace FastBroker.Protocol.Internal;

/// <summary>Sequential little-endian writes into a span the caller has checked is large enough.</summary>
internal ref struct SpanCursor
{
    private readonly Span<byte> _span;

    public SpanCursor(Span<byte> span, int position)
    {
        _span = span;
        Position = position;
    }

    public int Position { get; private set; }

    public void Header(FrameType type, byte flags, ulong requestId)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(_span[Position..], 0); // back-patched on completion
        _span[Position + 4] = (byte)type;
        _span[Position + 5] = flags;
        _span[Position + 6] = 0;
        _span[Position + 7] = 0;
        BinaryPrimitives.WriteUInt64LittleEndian(_span[(Position + 8)..], requestId);
        Position += ProtocolConstants.HeaderSize;
    }

    public void U8(byte value) => _span[Position++] = value;

    public void U16(ushort value)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(_span[Position..], value);
        Position += 2;
    }

    public void U32(uint value)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(_span[Position..], value);
        Position += 4;
    }

    public void U64(ulong value)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(_span[Position..], value);
        Position += 8;
    }

    public void I64(long value)
    {
        BinaryPrimitives.WriteInt64LittleEndian(_span[Position..], value);
        Position += 8;
    }

    public void Bytes(ReadOnlySpan<byte> value)
    {
        value.CopyTo(_span[Position..]);
        Position += value.Length;
    }

    public void Str8(ReadOnlySpan<byte> value)
    {
        U8((byte)value.Length);
        Bytes(value);
    }

    public void Message(ReadOnlySpan<byte> key, ReadOnlySpan<byte> headers, ReadOnlySpan<byte> payload)
    {
        U16((ushort)key.Length);
        Bytes(key);
        U32((uint)headers.Length);
        Bytes(headers);
        U32((uint)payload.Length);
        Bytes(payload);
    }
}
