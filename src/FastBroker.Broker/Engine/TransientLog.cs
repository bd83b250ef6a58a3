using System.Buffers;
using FastBroker.Ring;

namespace FastBroker.Engine;

/// <summary>
/// The in-memory log of a transient topic: a ring of the last <c>capacity</c> messages, one writer (the journaler
/// thread, so transient and persistent topics share one order of acceptance), any number of readers that never
/// hold the writer back. A reader that falls more than a whole ring behind is told how many it missed.
/// </summary>
/// <remarks>
/// Each slot is a seqlock: the writer stores an odd version (2·offset + 1) with a full fence, writes the fields,
/// then stores the even version 2·offset + 2 with release semantics. A reader reads the version (acquire), copies
/// the fields into its own buffer, fences, and re-reads the version: if it changed, the slot was overwritten while
/// copying and the copy is discarded. Readers copy because a view into a slot could change under them.
/// <para>
/// Memory: every slot keeps the buffer it was created with (<c>min(MaxMessageBytes, InputEntryBytes)</c>, 512 bytes by
/// default) for good, so ordinary messages never allocate. A larger message is written into an array rented from
/// <see cref="ArrayPool{T}.Shared"/>, which goes back to the pool when the slot is overwritten by a message that fits
/// the slot's own buffer: the ring holds large arrays only for the large messages it holds, not a buffer the size of
/// the largest message ever sent in each of its slots (2^16 slots × 1 MiB would be 64 GiB after one burst). A reader
/// still copying out of a returned array copies bytes another renter may be writing; the slot's version has changed
/// by then, so the copy is discarded as overwritten.
/// </para>
/// </remarks>
internal sealed class TransientLog
{
    private readonly Slot[] _slots;
    private readonly int _mask;
    private readonly Sequence _head = new(0);
    private readonly long _ownBytes;
    private long _rentedBytes; // written by the writer only; read by snapshots

    public TransientLog(int capacity, int initialEntryBytes = 256)
    {
        if (capacity <= 0 || (capacity & (capacity - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(capacity), "capacity must be a power of two");
        }

        _slots = new Slot[capacity];
        for (var i = 0; i < capacity; i++)
        {
            _slots[i] = new Slot(initialEntryBytes);
        }

        _ownBytes = (long)capacity * initialEntryBytes;

        _mask = capacity - 1;
    }

    /// <summary>The offset the next message gets (= messages ever appended).</summary>
    public long Head => _head.Value;

    /// <summary>The oldest offset still held.</summary>
    public long Tail => Math.Max(0, Head - _slots.Length);

    /// <summary>How many messages the ring holds.</summary>
    public int Capacity => _slots.Length;

    /// <summary>
    /// Bytes the slots hold for message contents: every slot's own buffer plus the pooled arrays the large messages
    /// still in the ring occupy (a rented array may be longer than its message: the pool rounds up to a power of two).
    /// </summary>
    public long SlotBytes => _ownBytes + Volatile.Read(ref _rentedBytes);

    /// <summary>
    /// The length of each slot's own buffer (<c>min(MaxMessageBytes, InputEntryBytes)</c>): a reader's own copy buffer
    /// is as long, so the messages that fit a slot fit it too.
    /// </summary>
    public int OwnEntryBytes => (int)(_ownBytes / _slots.Length);

    /// <summary>Appends a message (single writer only); returns its offset.</summary>
    public long Append(ReadOnlySpan<byte> key, ReadOnlySpan<byte> headers, ReadOnlySpan<byte> payload, long timestamp, ushort flags)
    {
        var offset = _head.Value;
        var slot = _slots[offset & _mask];
        Interlocked.Exchange(ref slot.Version, (offset * 2) + 1);
        var total = key.Length + headers.Length + payload.Length;
        if (total <= slot.Own.Length)
        {
            if (slot.Buffer != slot.Own)
            {
                ReturnRented(slot);
            }
        }
        else if (slot.Buffer.Length < total)
        {
            if (slot.Buffer != slot.Own)
            {
                ReturnRented(slot);
            }

            Rent(slot, total);
        }

        var dst = slot.Buffer.AsSpan();
        key.CopyTo(dst);
        headers.CopyTo(dst[key.Length..]);
        payload.CopyTo(dst[(key.Length + headers.Length)..]);
        slot.KeyLength = key.Length;
        slot.HeadersLength = headers.Length;
        slot.PayloadLength = payload.Length;
        slot.Timestamp = timestamp;
        slot.Flags = flags;
        Volatile.Write(ref slot.Version, (offset * 2) + 2);
        _head.SetValue(offset + 1);
        return offset;
    }

    /// <summary>
    /// The offset of the first message stamped at or after <paramref name="timestamp"/> among those held now, or the
    /// head if none is: where a start at a time begins. The ring has no time index, and a wall clock that stepped back
    /// leaves its stamps out of order, so this scans the held stamps from the oldest (at most a ring, stamps only; a
    /// subscription's start, never the delivery path). A slot overwritten while scanning is gone: the scan goes on from
    /// the oldest message still held.
    /// </summary>
    public long FirstAtOrAfter(long timestamp)
    {
        var head = _head.Value;
        for (var offset = Math.Max(0, head - _slots.Length); offset < head; offset++)
        {
            var slot = _slots[offset & _mask];
            var expected = (offset * 2) + 2;
            var stamp = Volatile.Read(ref slot.Version) == expected ? slot.Timestamp : long.MinValue;
            Interlocked.MemoryBarrier();
            if (Volatile.Read(ref slot.Version) != expected)
            {
                offset = Math.Max(offset, Tail - 1); // overwritten (a version only grows): on from the oldest held
                continue;
            }

            if (stamp >= timestamp)
            {
                return offset;
            }
        }

        return head;
    }

    /// <summary>
    /// Copies the message at <paramref name="offset"/> into <paramref name="buffer"/>. A message longer than the buffer
    /// is not copied: <see cref="TransientReadStatus.TooSmall"/>, and <paramref name="entry"/>'s lengths say how long
    /// it is, for the reader to read it again into a buffer that large (the log never allocates for a reader).
    /// </summary>
    public TransientReadStatus TryRead(long offset, byte[] buffer, out TransientEntry entry)
    {
        entry = default;
        if (offset >= _head.Value)
        {
            return TransientReadStatus.NotYet;
        }

        if (offset < _head.Value - _slots.Length)
        {
            return TransientReadStatus.Overwritten;
        }

        var slot = _slots[offset & _mask];
        var expected = (offset * 2) + 2;
        var v1 = Volatile.Read(ref slot.Version);
        if (v1 != expected)
        {
            return v1 > expected ? TransientReadStatus.Overwritten : TransientReadStatus.NotYet;
        }

        var k = slot.KeyLength;
        var h = slot.HeadersLength;
        var p = slot.PayloadLength;
        var source = slot.Buffer;
        var total = k + h + p;
        if (total < 0 || total > source.Length)
        {
            return TransientReadStatus.Overwritten; // fields from a newer write; the version check below would say so too
        }

        if (buffer.Length < total)
        {
            // Lengths read while the slot was overwritten may be torn: only ones the version still vouches for count.
            Interlocked.MemoryBarrier();
            if (Volatile.Read(ref slot.Version) != v1)
            {
                return TransientReadStatus.Overwritten;
            }

            entry = new TransientEntry(offset, 0, 0, k, h, p);
            return TransientReadStatus.TooSmall;
        }

        source.AsSpan(0, total).CopyTo(buffer);
        var timestamp = slot.Timestamp;
        var flags = slot.Flags;
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref slot.Version) != v1)
        {
            return TransientReadStatus.Overwritten;
        }

        entry = new TransientEntry(offset, timestamp, flags, k, h, p);
        return TransientReadStatus.Ok;
    }

    // The slow path: a message larger than the slot's own buffer.
    private void Rent(Slot slot, int total)
    {
        var rented = ArrayPool<byte>.Shared.Rent(total);
        slot.Buffer = rented;
        Volatile.Write(ref _rentedBytes, _rentedBytes + rented.Length);
    }

    private void ReturnRented(Slot slot)
    {
        var rented = slot.Buffer;
        slot.Buffer = slot.Own;
        Volatile.Write(ref _rentedBytes, _rentedBytes - rented.Length);
        ArrayPool<byte>.Shared.Return(rented);
    }

    private sealed class Slot
    {
        public readonly byte[] Own;
        public long Version;
        public byte[] Buffer; // Own, or an array rented while the slot holds a message larger than Own: what readers copy from
        public int KeyLength;
        public int HeadersLength;
        public int PayloadLength;
        public long Timestamp;
        public ushort Flags;

        public Slot(int bytes)
        {
            Own = new byte[bytes];
            Buffer = Own;
        }
    }
}

/// <summary>Outcome of <see cref="TransientLog.TryRead"/>.</summary>
internal enum TransientReadStatus
{
    Ok,
    NotYet,
    Overwritten,

    /// <summary>The message is longer than the reader's buffer: the entry's lengths say how long.</summary>
    TooSmall,
}

/// <summary>Where the parts of a copied transient message lie in the reader's buffer.</summary>
internal readonly record struct TransientEntry(long Offset, long Timestamp, ushort Flags, int KeyLength, int HeadersLength, int PayloadLength)
{
    /// <summary>The bytes the message takes in a buffer: key, headers and payload.</summary>
    public int Length => KeyLength + HeadersLength + PayloadLength;
}
