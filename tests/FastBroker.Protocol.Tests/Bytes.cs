using System.Buffers.Binary;
using FastBroker.Protocol;

namespace FastBroker.ProtocolTests;

/// <summary>Hand-built frames for malformed cases: fields appended little-endian, the header computed.</summary>
internal sealed class Bytes
{
    private readonly List<byte> _bytes = [];

    public static byte[] Frame(FrameType type, Bytes body, byte flags = 0, ulong requestId = 77)
        => Frame((byte)type, body.ToArray(), flags, requestId);

    public static byte[] Frame(byte type, byte[] body, byte flags = 0, ulong requestId = 77)
    {
        var frame = new byte[ProtocolConstants.HeaderSize + body.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(frame, (uint)(frame.Length - 4));
        frame[4] = type;
        frame[5] = flags;
        BinaryPrimitives.WriteUInt64LittleEndian(frame.AsSpan(8), requestId);
        body.CopyTo(frame, ProtocolConstants.HeaderSize);
        return frame;
    }

    public Bytes U8(int v)
    {
        _bytes.Add((byte)v);
        return this;
    }

    public Bytes U16(int v)
    {
        Span<byte> b = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(b, (ushort)v);
        _bytes.AddRange(b.ToArray());
        return this;
    }

    public Bytes U32(uint v)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, v);
        _bytes.AddRange(b.ToArray());
        return this;
    }

    public Bytes U64(ulong v)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, v);
        _bytes.AddRange(b.ToArray());
        return this;
    }

    public Bytes Raw(params byte[] v)
    {
        _bytes.AddRange(v);
        return this;
    }

    public Bytes Str8(string s)
    {
        var b = System.Text.Encoding.UTF8.GetBytes(s);
        return U8(b.Length).Raw(b);
    }

    /// <summary>A message block: key, headers block (raw entries), payload.</summary>
    public Bytes Message(byte[]? key = null, byte[]? headers = null, byte[]? payload = null)
    {
        key ??= [];
        headers ??= [];
        payload ??= [];
        return U16(key.Length).Raw(key).U32((uint)headers.Length).Raw(headers).U32((uint)payload.Length).Raw(payload);
    }

    public byte[] ToArray() => [.. _bytes];

    /// <summary>PUBLISH body prefix up to the topic: producerId, sequence, ttl, durability.</summary>
    public static Bytes PublishPrefix(int durability = 0) => new Bytes().U64(0).U64(0).U32(0).U8(durability);
}
