using System.Buffers.Binary;
using System.Text;
using FastBroker.Client.Internal;
using FastBroker.Protocol;

namespace FastBroker.Client;

/// <summary>
/// Headers to publish, encoded once as you add them (the wire's header block), so one instance can be reused for
/// many publishes without cost. Names are 1–255 UTF-8 bytes and case-sensitive; names starting with <c>fb-</c>
/// are reserved for the broker and the clients, and the two the server writes itself, <c>fb-expires</c> (use
/// <see cref="PublishOptions"/>' TTL) and <c>fb-producer</c>, are refused here (the server would refuse the message
/// with <c>InvalidArgument</c>). Not thread-safe while being built.
/// </summary>
public sealed class PublishHeaders
{
    private byte[] _buffer = new byte[64];
    private int _length;

    /// <summary>Number of entries.</summary>
    public int Count { get; private set; }

    /// <summary>The encoded header block.</summary>
    public ReadOnlySpan<byte> Encoded => _buffer.AsSpan(0, _length);

    /// <summary>Adds an entry with a UTF-8 text value; returns this instance for chaining.</summary>
    /// <exception cref="ArgumentException">
    /// The name or the value is not valid UTF-16 text (a lone surrogate), or the name is empty, longer than 255 bytes, or
    /// <c>fb-expires</c> / <c>fb-producer</c>.
    /// </exception>
    public PublishHeaders Add(string name, string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        var byteCount = Utf8Names.GetByteCount(value, nameof(value));
        if (byteCount > ProtocolConstants.MaxShortBytesLength)
        {
            ThrowHelper.ThrowTooLong(nameof(value), byteCount, ProtocolConstants.MaxShortBytesLength);
        }

        var span = Reserve(name, byteCount);
        Encoding.UTF8.GetBytes(value, span);
        return this;
    }

    /// <summary>Adds an entry with a binary value; returns this instance for chaining.</summary>
    /// <exception cref="ArgumentException">
    /// The name is not valid UTF-16 text (a lone surrogate), empty, longer than 255 bytes, or <c>fb-expires</c> /
    /// <c>fb-producer</c>.
    /// </exception>
    public PublishHeaders Add(string name, ReadOnlySpan<byte> value)
    {
        if (value.Length > ProtocolConstants.MaxShortBytesLength)
        {
            ThrowHelper.ThrowTooLong(nameof(value), value.Length, ProtocolConstants.MaxShortBytesLength);
        }

        value.CopyTo(Reserve(name, value.Length));
        return this;
    }

    /// <summary>Appends already-encoded entries (another block, or a received message's headers).</summary>
    internal PublishHeaders AddEncoded(ReadOnlySpan<byte> entries, int count)
    {
        if (_buffer.Length - _length < entries.Length)
        {
            Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + entries.Length));
        }

        entries.CopyTo(_buffer.AsSpan(_length));
        _length += entries.Length;
        Count += count;
        return this;
    }

    /// <summary>Removes every entry (keeps the buffer).</summary>
    public void Clear()
    {
        _length = 0;
        Count = 0;
    }

    // Writes name and value length; returns the span the value goes into.
    private Span<byte> Reserve(string name, int valueLength)
    {
        var nameLength = Utf8Names.CheckedByteCount(name, nameof(name));
        var needed = HeaderBlockWriter.GetEntryLength(nameLength, valueLength);
        if (_buffer.Length - _length < needed)
        {
            Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + needed));
        }

        var span = _buffer.AsSpan(_length, needed);
        span[0] = (byte)nameLength;
        Encoding.UTF8.GetBytes(name, span.Slice(1, nameLength));
        if (span.Slice(1, nameLength).SequenceEqual(ProtocolHeaders.Producer) || span.Slice(1, nameLength).SequenceEqual(ProtocolHeaders.Expires))
        {
            throw new ArgumentException($"Header '{name}' is reserved: the server writes it itself (docs/protocol.md §9).", nameof(name));
        }

        BinaryPrimitives.WriteUInt16LittleEndian(span[(1 + nameLength)..], (ushort)valueLength);
        _length += needed;
        Count++;
        return span[(3 + nameLength)..];
    }
}
