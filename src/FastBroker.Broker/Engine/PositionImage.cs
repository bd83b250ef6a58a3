using System.Buffers.Binary;
using System.Text;

namespace FastBroker.Engine;

/// <summary>
/// In memory, the bytes of a copy of a position file (<see cref="PositionStore"/>'s layout) once the commits applied to
/// the copy since it was taken whole have been stored into it as <see cref="PositionStore.Commit"/> stores them (the
/// same entry found, or the next one added), kept without the zeros that end the file. The primary's replicator holds
/// one per position file it sent the standby whole, so that a file whose only changes since are commits the standby
/// was sent as updates is not sent whole again (<see cref="Matches"/>).
/// </summary>
internal sealed class PositionImage
{
    private byte[] _bytes; // the file's first bytes: every byte after them is zero

    private PositionImage(byte[] bytes) => _bytes = bytes;

    /// <summary>The image of <paramref name="file"/>; null when it is not a whole position file (a copy of it would not open as the same file).</summary>
    public static PositionImage? Of(ReadOnlySpan<byte> file)
    {
        if (file.Length != PositionStore.FileLength
            || BinaryPrimitives.ReadInt64LittleEndian(file) != PositionStore.Magic
            || BinaryPrimitives.ReadInt64LittleEndian(file[8..]) is < 0 or > PositionStore.MaxTopics)
        {
            return null;
        }

        return new PositionImage(file[..(file.LastIndexOfAnyExcept((byte)0) + 1)].ToArray());
    }

    /// <summary>True when <paramref name="file"/> is byte for byte the file this image is of.</summary>
    public bool Matches(ReadOnlySpan<byte> file) =>
        file.Length == PositionStore.FileLength
        && file[.._bytes.Length].SequenceEqual(_bytes)
        && !file[_bytes.Length..].ContainsAnyExcept((byte)0);

    /// <summary>
    /// Stores a commit of <paramref name="nextOffset"/> in <paramref name="topic"/> as the copy's
    /// <see cref="PositionStore.Commit"/> does. False when the copy would not take it the same way (an entry past
    /// <see cref="PositionStore.MaxTopics"/>, a name longer than an entry holds): the image no longer says what the copy holds.
    /// </summary>
    public bool Commit(string topic, long nextOffset)
    {
        var name = Encoding.UTF8.GetBytes(topic);
        if (nextOffset < 0 || name.Length is 0 or > 255)
        {
            return false;
        }

        // As the store's index: the published entries (a name and a position), the last of a name winning.
        var count = (int)Slot(1);
        var found = -1;
        for (var i = 0; i < count; i++)
        {
            var entry = PositionStore.HeaderBytes + (i * PositionStore.EntryBytes);
            var len = Region(entry, 1)[0];
            if (len != 0 && Slot(SlotOf(i)) != 0 && Region(entry + 1, len).SequenceEqual(name))
            {
                found = i;
            }
        }

        if (found >= 0)
        {
            SetSlot(SlotOf(found), nextOffset + 1);
            return true;
        }

        if (count >= PositionStore.MaxTopics)
        {
            return false;
        }

        var added = Region(PositionStore.HeaderBytes + (count * PositionStore.EntryBytes), 1 + name.Length);
        name.CopyTo(added[1..]);
        added[0] = (byte)name.Length;
        SetSlot(1, count + 1);
        SetSlot(SlotOf(count), nextOffset + 1);
        return true;
    }

    private static int SlotOf(int entry) => (PositionStore.HeaderBytes + (entry * PositionStore.EntryBytes) + 256) / 8;

    private long Slot(int slot) => BinaryPrimitives.ReadInt64LittleEndian(Region(slot * 8, 8));

    private void SetSlot(int slot, long value) => BinaryPrimitives.WriteInt64LittleEndian(Region(slot * 8, 8), value);

    /// <summary>The bytes at <paramref name="offset"/>, the kept ones extended with the file's zeros to cover them (and more: a zero kept is a zero compared).</summary>
    private Span<byte> Region(int offset, int length)
    {
        if (offset + length > _bytes.Length)
        {
            Array.Resize(ref _bytes, (int)Math.Min(PositionStore.FileLength, Math.Max(offset + length, _bytes.Length * 2L)));
        }

        return _bytes.AsSpan(offset, length);
    }
}
