using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace FastBroker.Protocol.Internal;

/// <summary>
/// Writes one frame into an <see cref="IBufferWriter{T}"/> (a PipeWriter in the server and client): fixed
/// fields into the current span, bulk fields (key, headers, payload) in chunks, so a frame larger than one
/// buffer segment never needs a contiguous buffer of its size. Nothing is visible to the reader of the pipe
/// until <see cref="Commit"/> (Advance without Flush).
/// </summary>
internal ref struct FrameOutput
{
    // 4 KiB: the PipeWriter's default segment size; asking for more than the remaining frame wastes nothing.
    private const int ChunkHint = 4096;

    private readonly IBufferWriter<byte> _output;
    private Span<byte> _span;
    private int _buffered;

    public FrameOutput(IBufferWriter<byte> output, long totalLength)
    {
        if (totalLength > int.MaxValue)
        {
            ThrowHelper.ThrowFrameTooLarge(totalLength);
        }

        _output = output;
        _span = output.GetSpan((int)Math.Min(totalLength, 64 * 1024));
        _buffered = 0;
    }

    public void Commit()
    {
        _output.Advance(_buffered);
        _buffered = 0;
        _span = default;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Span<byte> Take(int count)
    {
        if (_span.Length - _buffered < count)
        {
            Grow(count);
        }

        var slice = _span.Slice(_buffered, count);
        _buffered += count;
        return slice;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Grow(int count)
    {
        _output.Advance(_buffered);
        _buffered = 0;
        _span = _output.GetSpan(count);
    }

    public void Header(long totalLength, FrameType type, byte flags, ulong requestId)
    {
        var span = Take(ProtocolConstants.HeaderSize);
        BinaryPrimitives.WriteUInt32LittleEndian(span, (uint)(totalLength - ProtocolConstants.LengthPrefixSize));
        span[4] = (byte)type;
        span[5] = flags;
        span[6] = 0;
        span[7] = 0;
        BinaryPrimitives.WriteUInt64LittleEndian(span[8..], requestId);
    }

    public void U8(byte value) => Take(1)[0] = value;

    public void U16(ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(Take(2), value);

    public void U32(uint value) => BinaryPrimitives.WriteUInt32LittleEndian(Take(4), value);

    public void U64(ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(Take(8), value);

    public void I64(long value) => BinaryPrimitives.WriteInt64LittleEndian(Take(8), value);

    public void Bytes(ReadOnlySpan<byte> value)
    {
        while (!value.IsEmpty)
        {
            if (_span.Length == _buffered)
            {
                Grow(Math.Min(value.Length, ChunkHint));
            }

            var n = Math.Min(value.Length, _span.Length - _buffered);
            value[..n].CopyTo(_span[_buffered..]);
            _buffered += n;
            value = value[n..];
        }
    }

    public void Str8(ReadOnlySpan<byte> value)
    {
        U8((byte)value.Length);
        Bytes(value);
    }

    public void Bytes16(ReadOnlySpan<byte> value)
    {
        U16((ushort)value.Length);
        Bytes(value);
    }

    public void Bytes32(ReadOnlySpan<byte> value)
    {
        U32((uint)value.Length);
        Bytes(value);
    }

    public void Message(ReadOnlySpan<byte> key, ReadOnlySpan<byte> headers, ReadOnlySpan<byte> payload)
    {
        Bytes16(key);
        Bytes32(headers);
        Bytes32(payload);
    }
}
