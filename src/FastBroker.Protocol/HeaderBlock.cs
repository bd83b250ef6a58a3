using System.Buffers;

namespace FastBroker.Protocol;

/// <summary>
/// A validated header block (name → bytes entries, docs/protocol.md "Header block") as a slice of the received
/// frame: enumerate it, look a name up, or copy <see cref="Entries"/> verbatim into the journal. Valid only
/// during the handler call that received it, like the frame (a batch split across buffer segments is parsed from a
/// copy the parser gives back when the call returns).
/// </summary>
public readonly struct HeaderBlock
{
    internal HeaderBlock(in ReadOnlySequence<byte> entries, int count)
    {
        Entries = entries;
        Count = count;
    }

    /// <summary>The encoded entries (without the u32 block length).</summary>
    public ReadOnlySequence<byte> Entries { get; }

    /// <summary>Number of entries.</summary>
    public int Count { get; }

    /// <summary>True when the block has no entries.</summary>
    public bool IsEmpty => Count == 0;

    /// <summary>Enumerates the entries in wire order (duplicates are kept).</summary>
    public HeaderEnumerator GetEnumerator() => new(Entries);

    /// <summary>The value of the first entry named <paramref name="name"/> (ordinal, byte-wise).</summary>
    public bool TryGetValue(ReadOnlySpan<byte> name, out ReadOnlySequence<byte> value)
    {
        foreach (var entry in this)
        {
            if (entry.NameEquals(name))
            {
                value = entry.Value;
                return true;
            }
        }

        value = default;
        return false;
    }
}
