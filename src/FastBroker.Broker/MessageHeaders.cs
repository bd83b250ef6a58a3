using System.Buffers.Binary;
using System.Text;
using FastBroker.Engine;
using FastBroker.Journal;

namespace FastBroker;

/// <summary>
/// A reusable builder of message headers (name → bytes), encoded as the journal's header block:
/// repeated <c>[u8 nameLength][name UTF-8][u16 valueLength][value]</c> (the wire protocol's header entries). Keep one per publishing thread and
/// <see cref="Clear"/> it between messages: after its buffer has grown to fit, adding headers allocates nothing.
/// </summary>
public sealed class MessageHeaders
{
    /// <summary>
    /// Names starting with this are reserved for the broker and its clients (TTL, idempotent producers, priorities,
    /// request-reply, dead-letter history). Two of them the broker writes itself and reads back, and a publish that
    /// carries either is refused with <see cref="BrokerErrorCode.InvalidArgument"/>: <see cref="Broker.ExpiresHeader"/>
    /// (set a TTL instead) and <see cref="Broker.ProducerHeader"/>. <c>fb-priority</c>, <c>fb-reply-to</c>,
    /// <c>fb-correlation-id</c> and the <c>fb-dlq-*</c> names may be published (docs/broker.md, "Reserved headers").
    /// </summary>
    public const string ReservedPrefix = "fb-";

    private byte[] _buffer;
    private int _length;

    /// <summary>Creates an empty builder with room for <paramref name="capacity"/> bytes.</summary>
    public MessageHeaders(int capacity = 256) => _buffer = new byte[Math.Max(16, capacity)];

    /// <summary>The encoded header block.</summary>
    public ReadOnlySpan<byte> Encoded => _buffer.AsSpan(0, _length);

    /// <summary>Number of encoded bytes.</summary>
    public int Length => _length;

    /// <summary>Forgets every header (keeps the buffer).</summary>
    public MessageHeaders Clear()
    {
        _length = 0;
        return this;
    }

    /// <summary>Adds a header with a byte value.</summary>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not valid UTF-16 text (a lone surrogate, which
    /// UTF-8 cannot encode: written as U+FFFD it would name another header); nothing is added.</exception>
    /// <exception cref="BrokerException"><see cref="BrokerErrorCode.InvalidArgument"/>: the name is empty or longer than
    /// 255 UTF-8 bytes, or the value longer than the journal's header value limit.</exception>
    public MessageHeaders Add(string name, ReadOnlySpan<byte> value)
    {
        var nameBytes = Utf8Text.GetByteCount(name, nameof(name));
        if (nameBytes is 0 or > 255)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, "a header name must be 1 to 255 bytes of UTF-8");
        }

        if (value.Length > RecordHeaderReader.MaxValueLength)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, $"a header value is at most {RecordHeaderReader.MaxValueLength} bytes (got {value.Length})");
        }

        var size = RecordHeaderReader.SizeOf(nameBytes, value.Length);
        EnsureRoom(size);
        var dst = _buffer.AsSpan(_length);
        dst[0] = (byte)nameBytes;
        Utf8Text.GetBytes(name, dst.Slice(1));
        BinaryPrimitives.WriteUInt16LittleEndian(dst.Slice(1 + nameBytes), (ushort)value.Length);
        value.CopyTo(dst.Slice(3 + nameBytes));
        _length += size;
        return this;
    }

    /// <summary>Adds a header with a UTF-8 text value.</summary>
    /// <exception cref="ArgumentException"><paramref name="name"/> or <paramref name="value"/> is not valid UTF-16 text
    /// (a lone surrogate, which UTF-8 cannot encode: written as U+FFFD it would be another name or value); nothing is
    /// added.</exception>
    /// <exception cref="BrokerException">As for <see cref="Add(string, ReadOnlySpan{byte})"/>.</exception>
    public MessageHeaders Add(string name, string value)
    {
        var count = Utf8Text.GetByteCount(value, nameof(value));
        if (count <= 256)
        {
            Span<byte> tmp = stackalloc byte[256];
            var n = Utf8Text.GetBytes(value, tmp);
            return Add(name, tmp[..n]);
        }

        return Add(name, Utf8Text.GetBytes(value, nameof(value)));
    }

    /// <summary>Adds a header with a 64-bit little-endian value.</summary>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not valid UTF-16 text; nothing is added.</exception>
    public MessageHeaders Add(string name, long value)
    {
        Span<byte> tmp = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(tmp, value);
        return Add(name, tmp);
    }

    /// <summary>
    /// Finds the value of the first header called <paramref name="name"/> in an encoded block. The broker appends its
    /// own entries (<see cref="Broker.ExpiresHeader"/>, <see cref="Broker.ProducerHeader"/>) after the publisher's.
    /// </summary>
    public static bool TryGet(ReadOnlySpan<byte> block, scoped ReadOnlySpan<byte> name, out ReadOnlySpan<byte> value)
    {
        var reader = new RecordHeaderReader(block);
        while (reader.TryReadNext(out var n, out var v))
        {
            if (n.SequenceEqual(name))
            {
                value = v;
                return true;
            }
        }

        value = default;
        return false;
    }

    /// <summary>Decodes a header block into (name, value) pairs (allocates; for display and the async API).</summary>
    public static IReadOnlyList<KeyValuePair<string, byte[]>> Decode(ReadOnlySpan<byte> block)
    {
        var list = new List<KeyValuePair<string, byte[]>>();
        var reader = new RecordHeaderReader(block);
        while (reader.TryReadNext(out var name, out var value))
        {
            list.Add(new(Encoding.UTF8.GetString(name), value.ToArray()));
        }

        return list;
    }

    private void EnsureRoom(int size)
    {
        if (_length + size <= _buffer.Length)
        {
            return;
        }

        Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + size));
    }
}
