using System.Buffers.Binary;
using System.Collections;
using System.Text;
using FastBroker.Client.Internal;
using FastBroker.Protocol;

namespace FastBroker.Client;

/// <summary>
/// The headers of a received message: a read-only view over its encoded header block (owned by the message), in
/// wire order with duplicates kept. Lookups compare names byte for byte (case-sensitive) and return the first match;
/// only enumeration and the indexer allocate (the name strings).
/// </summary>
public readonly struct ClientHeaders : IReadOnlyList<KeyValuePair<string, ReadOnlyMemory<byte>>>
{
    private readonly ReadOnlyMemory<byte> _block;

    internal ClientHeaders(ReadOnlyMemory<byte> block, int count)
    {
        _block = block;
        Count = count;
    }

    /// <summary>Number of entries.</summary>
    public int Count { get; }

    /// <summary>The encoded entries (docs/protocol.md, header entry).</summary>
    public ReadOnlyMemory<byte> Encoded => _block;

    /// <summary>The entry at <paramref name="index"/> (a linear scan).</summary>
    public KeyValuePair<string, ReadOnlyMemory<byte>> this[int index]
    {
        get
        {
            ArgumentOutOfRangeException.ThrowIfNegative(index);
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
            var e = GetEnumerator();
            for (var i = 0; i <= index; i++)
            {
                e.MoveNext();
            }

            return e.Current;
        }
    }

    /// <summary>The value of the first entry named <paramref name="name"/>.</summary>
    public bool TryGetValue(ReadOnlySpan<byte> name, out ReadOnlyMemory<byte> value)
    {
        if (HeaderScan.TryFind(_block.Span, name, out var start, out var length))
        {
            value = _block.Slice(start, length);
            return true;
        }

        value = default;
        return false;
    }

    /// <summary>The value of the first entry named <paramref name="name"/> (the name is encoded on the stack, nothing allocated).</summary>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not valid UTF-16 (a lone surrogate), so it names no header.</exception>
    public bool TryGetValue(string name, out ReadOnlyMemory<byte> value)
    {
        Span<byte> utf8 = stackalloc byte[ProtocolConstants.MaxNameLength];
        var length = Utf8Names.EncodeLookupName(name, nameof(name), utf8);
        if (length < 0)
        {
            value = default;
            return false;
        }

        return TryGetValue(utf8[..length], out value);
    }

    /// <summary>The value of the first entry named <paramref name="name"/> decoded as UTF-8, or null.</summary>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not valid UTF-16 (a lone surrogate).</exception>
    public string? GetString(string name) => TryGetValue(name, out var value) ? Encoding.UTF8.GetString(value.Span) : null;

    /// <summary>Enumerates the entries (allocates each name string).</summary>
    public Enumerator GetEnumerator() => new(_block);

    IEnumerator<KeyValuePair<string, ReadOnlyMemory<byte>>> IEnumerable<KeyValuePair<string, ReadOnlyMemory<byte>>>.GetEnumerator() => GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>Enumerates the entries of a <see cref="ClientHeaders"/>.</summary>
    public struct Enumerator : IEnumerator<KeyValuePair<string, ReadOnlyMemory<byte>>>
    {
        private readonly ReadOnlyMemory<byte> _block;
        private int _position;

        internal Enumerator(ReadOnlyMemory<byte> block)
        {
            _block = block;
            _position = 0;
            Current = default;
        }

        /// <summary>The current entry.</summary>
        public KeyValuePair<string, ReadOnlyMemory<byte>> Current { get; private set; }

        readonly object IEnumerator.Current => Current;

        /// <summary>Moves to the next entry.</summary>
        public bool MoveNext()
        {
            var span = _block.Span;
            if (_position >= span.Length)
            {
                return false;
            }

            int nameLength = span[_position];
            var name = Encoding.UTF8.GetString(span.Slice(_position + 1, nameLength));
            var valueLength = BinaryPrimitives.ReadUInt16LittleEndian(span[(_position + 1 + nameLength)..]);
            var valueStart = _position + 3 + nameLength;
            Current = new KeyValuePair<string, ReadOnlyMemory<byte>>(name, _block.Slice(valueStart, valueLength));
            _position = valueStart + valueLength;
            return true;
        }

        /// <summary>Back to the start.</summary>
        public void Reset()
        {
            _position = 0;
            Current = default;
        }

        /// <inheritdoc />
        public readonly void Dispose()
        {
        }
    }
}
