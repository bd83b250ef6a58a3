using System.Buffers.Binary;

namespace FastBroker.Client.Internal;

/// <summary>Looks a name up in encoded header entries (docs/protocol.md, header entry) already validated by the parser.</summary>
internal static class HeaderScan
{
    /// <summary>The first entry named <paramref name="name"/> (byte for byte): where its value starts and how long it is.</summary>
    public static bool TryFind(ReadOnlySpan<byte> entries, scoped ReadOnlySpan<byte> name, out int valueStart, out int valueLength)
    {
        var pos = 0;
        while (pos < entries.Length)
        {
            int nameLength = entries[pos];
            var entryName = entries.Slice(pos + 1, nameLength);
            valueLength = BinaryPrimitives.ReadUInt16LittleEndian(entries[(pos + 1 + nameLength)..]);
            valueStart = pos + 3 + nameLength;
            if (entryName.SequenceEqual(name))
            {
                return true;
            }

            pos = valueStart + valueLength;
        }

        valueStart = 0;
        valueLength = 0;
        return false;
    }
}
