using System.Buffers;

namespace FastBroker.Protocol;

/// <summary>Enumerates a validated <see cref="HeaderBlock"/> without allocating.</summary>
public ref struct HeaderEnumerator
{
    private SequenceReader<byte> _reader;

    internal HeaderEnumerator(ReadOnlySequence<byte> entries)
    {
        _reader = new SequenceReader<byte>(entries);
        Current = default;
    }

    /// <summary>The current entry.</summary>
    public HeaderEntry Current { get; private set; }

    /// <summary>Moves to the next entry.</summary>
    public bool MoveNext()
    {
        // The block was validated when the frame was parsed, so each read below succeeds.
        if (!_reader.TryRead(out var nameLength) || _reader.Remaining < nameLength)
        {
            return false;
        }

        var name = _reader.UnreadSequence.Slice(0, nameLength);
        _reader.Advance(nameLength);
        if (!_reader.TryReadLittleEndian(out short rawLength) || _reader.Remaining < (ushort)rawLength)
        {
            return false;
        }

        var value = _reader.UnreadSequence.Slice(0, (ushort)rawLength);
        _reader.Advance((ushort)rawLength);
        Current = new HeaderEntry(name, value);
        return true;
    }
}
