using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace FastBroker.Journal.Internal;

/// <summary>
/// One segment file, created at its full size (sparse), mapped <c>MAP_SHARED</c> for its lifetime, and given disk
/// blocks (<c>posix_fallocate</c>) ahead of the writer a chunk at a time: the writer never stores into a page without
/// blocks (on a full disk that would be a SIGBUS, not an error), and a quiet topic holds a few MiB of disk, not a
/// whole segment's worth.
/// Reference counted: the journal holds one reference, each reader positioned in it one more; the mapping is
/// removed only when the count reaches zero. Retention retires a segment whether or not readers hold it
/// (<see cref="Retire"/>): it leaves the journal's list, its files are unlinked, and the journal drops its reference;
/// the mapping and the file descriptor (unlinked files stay readable on Linux) live until the last reader releases,
/// so retention can never unmap a segment under a reader. A parked reader (no span outstanding) releases a retired
/// segment in the retention pass itself (<see cref="JournalReader.Park"/>), so only readers mid-read keep one.
/// </summary>
/// <remarks>
/// Progress is published as one packed 64-bit word, <c>(recordCount &lt;&lt; 32) | endPosition</c>, so that
/// (count, position) pairs are always read consistently: <see cref="Published"/> by the writer after every
/// append (release), <see cref="Durable"/> by whoever makes records durable (the flusher, or the writer under
/// <see cref="DurabilityPolicy.None"/>). Readers never go past <see cref="Durable"/>.
/// </remarks>
internal sealed unsafe partial class Segment
{
    internal const int PageSize = 4096;

    /// <summary>
    /// The unit and alignment of <see cref="AllocateTo"/>, and what a new segment gets at creation: the largest
    /// page-cache folio on x86-64. Segments are mapped with <c>MADV_HUGEPAGE</c>, and on a file system with large
    /// folios (ext4 since 6.16) one write fault dirties a whole naturally aligned folio of up to 2 MiB; blocks for
    /// all of it must be allocated, or that fault reserves them itself (measured: delayed-allocation extents past the
    /// allocated end) and on a full disk fails with SIGBUS.
    /// </summary>
    internal const int AllocationUnit = 2 << 20;

    private readonly SafeFileHandle _handle;
    private readonly nuint _mappedLength;
    private nint _base;
    private int _refCount = 1;
    private int _unmapped;
    private long _published;
    private long _durable;
    private volatile bool _closed;
    private volatile bool _sealed;
    private volatile bool _retired;
    private long _lastTimestamp;
    private int _allocatedTo;
    private long _verified = Pack(0, SegmentHeader.Size);
    private int _writtenFrom = int.MaxValue;
    private bool _appendAdvised; // writer thread (activation) and flusher (seal), never at once
    private bool _tailHuge; // pre-fault thread (SetTailFolios), after construction
    private readonly Lock _emulationLock = new();

    private Segment(string path, SafeFileHandle handle, nint mapping, nuint mappedLength, in SegmentHeader header, bool writable, SparseIndex index)
    {
        FilePath = path;
        _handle = handle;
        _base = mapping;
        _mappedLength = mappedLength;
        BaseOffset = header.BaseOffset;
        Size = header.SegmentSize;
        Epoch = header.Epoch;
        CreatedUnixMs = header.CreatedUnixMs;
        Writable = writable;
        Index = index;
        _published = _durable = Pack(0, SegmentHeader.Size);
        _tailHuge = UseHugePages && HugeAligned;
    }

    internal string FilePath { get; private set; }

    internal long BaseOffset { get; private set; }

    internal int Size { get; }

    internal long Epoch { get; private set; }

    internal long CreatedUnixMs { get; private set; }

    internal bool Writable { get; }

    internal SparseIndex Index { get; set; }

    internal SafeFileHandle Handle => _handle;

    internal byte* Pointer => (byte*)_base;

    /// <summary>Readable bytes (less than <see cref="Size"/> only for a short file opened read-only).</summary>
    internal int MappedLength => (int)_mappedLength;

    internal ReadOnlySpan<byte> Bytes => new((void*)_base, (int)_mappedLength);

    internal Span<byte> WritableBytes => new((void*)_base, (int)_mappedLength);

    /// <summary>
    /// The mapped bytes up to the end of the file's last data extent: what recovery and inspection scan. Past it the
    /// file is a hole (a segment gets blocks as it fills), which reads as zeros, but on tmpfs a read fault in a hole
    /// allocates a page, and on a full tmpfs that is a SIGBUS; on any file system it is pages read for nothing.
    /// </summary>
    internal ReadOnlySpan<byte> ScanBytes => new((void*)_base, (int)Math.Min((long)_mappedLength, DataEnd(_handle, (long)_mappedLength)));

    internal long Published => Volatile.Read(ref _published);

    internal long Durable => Volatile.Read(ref _durable);

    internal bool IsClosed => _closed;

    internal bool IsSealed => _sealed;

    /// <summary>Out of the journal (retention): no new reader may acquire it; those that hold it read on.</summary>
    internal bool IsRetired => _retired;

    internal long LastTimestamp => Volatile.Read(ref _lastTimestamp);

    /// <summary>
    /// In memory only: at least the newest timestamp of every record before this segment in the log, the greatest
    /// <see cref="NewestUpToEnd"/> of the segments before it when it joined the journal (the open's, or the roll that
    /// made it; a segment retention deleted since still counts). Set before the segment is in the journal's list, never
    /// changed after.
    /// </summary>
    internal long NewestBefore { get; set; }

    /// <summary>
    /// At least the newest timestamp of every record up to this segment's end: <see cref="NewestBefore"/> or its
    /// <see cref="LastTimestamp"/>. It never falls along the journal's list (a segment's last timestamp is final once the
    /// next one joins, and the next one's <see cref="NewestBefore"/> took it), though the segments' last timestamps may,
    /// so a start at a time binary searches it (<see cref="JournalLog.LocateTimestamp"/>).
    /// </summary>
    internal long NewestUpToEnd => Math.Max(NewestBefore, LastTimestamp);

    /// <summary>Set at creation; the flusher fsyncs the directory before counting records in it as durable.</summary>
    internal bool NeedsDirectorySync { get; set; }

    /// <summary>
    /// Bytes from the start known to have disk blocks (0 for a segment opened from disk until the writer asks:
    /// allocating what is already allocated is cheap). The writer never writes past it.
    /// </summary>
    internal int AllocatedTo => Volatile.Read(ref _allocatedTo);

    /// <summary>How far the pre-fault thread has pre-faulted the mapping (pre-fault thread only).</summary>
    internal int PrefaultedTo { get; set; }

    internal int RefCount => Volatile.Read(ref _refCount);

    internal static long Pack(int count, int position) => ((long)count << 32) | (uint)position;

    internal static int CountOf(long packed) => (int)(packed >>> 32);

    internal static int PositionOf(long packed) => (int)packed;

    internal static string FileNameFor(long baseOffset) => baseOffset.ToString("D20", System.Globalization.CultureInfo.InvariantCulture) + ".seg";

    internal void Publish(long packed, long lastTimestamp)
    {
        Volatile.Write(ref _lastTimestamp, lastTimestamp);
        Volatile.Write(ref _published, packed);
    }

    internal void SetDurable(long packed) => Volatile.Write(ref _durable, packed);

    /// <summary>
    /// Sets both marks (recovery). <paramref name="verified"/>: the open checked every record up to them (CRC32C and
    /// all), so the whole written part is known good; otherwise only what the writer appends from here on is, and the
    /// records below are checked by their first reader (<see cref="IsVerified"/>).
    /// </summary>
    internal void SetRecovered(long packed, long lastTimestamp, bool isSealed, bool verified)
    {
        _lastTimestamp = lastTimestamp;
        _published = packed;
        _durable = packed;
        _sealed = isSealed;
        _closed = isSealed;
        _writtenFrom = verified ? SegmentHeader.Size : PositionOf(packed);
    }

    /// <summary>
    /// The verified watermark, packed as (records, position) like <see cref="Durable"/>: the end of the records from the
    /// segment's start that are known good in this process, checked whole (length, offset, CRC32C) by a reader or a
    /// seek, and how many they are (so a seek can check on from it, knowing the next record's offset). Grows only
    /// (<see cref="AdvanceVerified"/>).
    /// </summary>
    /// <remarks>
    /// The bytes below it are the file's (shared mapping), not written by the thread that checked them, so publishing
    /// the position alone is enough: a volatile read that sees it sees a position some reader checked. The position from
    /// which this process wrote the records is set before the segment is published to readers (at creation, or by the
    /// open before the journal hands its list out) and never changes, so readers read it plainly.
    /// </remarks>
    internal long Verified => Volatile.Read(ref _verified);

    /// <summary>The position of the verified watermark (<see cref="Verified"/>).</summary>
    internal int VerifiedTo => PositionOf(Volatile.Read(ref _verified));

    /// <summary>
    /// Whether the record at <paramref name="position"/> (below the durable end) is known good in this process, so a
    /// checking reader reads it by its length word alone: below <see cref="VerifiedTo"/>, or at or past the position
    /// from which this process wrote the segment's records (the writer computed their CRC32C from memory, a standby's
    /// copy checked each; from the first record for a segment created here or verified whole by the open). No lock,
    /// no allocation.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal bool IsVerified(int position) => position >= _writtenFrom || position < VerifiedTo;

    /// <summary>
    /// A reader or a seek checked (or read as known good) the records from position <paramref name="from"/> up to
    /// <paramref name="to"/> (packed: the records of the segment up to its end, and that end): the watermark moves to
    /// <paramref name="to"/> if it has reached <paramref name="from"/> (the known-good part stays one stretch from the
    /// segment's start) and is below it. Lock-free (a compare-and-swap), any thread.
    /// </summary>
    internal void AdvanceVerified(int from, long to)
    {
        var seen = Volatile.Read(ref _verified);
        while (PositionOf(seen) >= from && PositionOf(seen) < PositionOf(to))
        {
            var previous = Interlocked.CompareExchange(ref _verified, to, seen);
            if (previous == seen)
            {
                return;
            }

            seen = previous;
        }
    }

    internal void Close() => _closed = true;

    /// <summary>
    /// Adds a reader's reference; false once the segment has been retired (the caller looks at the journal's list
    /// again, which no longer has it).
    /// </summary>
    /// <remarks>
    /// <see cref="Retire"/> sets the flag, then drops the journal's reference (an interlocked decrement); this adds a
    /// reference (interlocked), then reads the flag. Both are full fences, so either this sees the flag and gives the
    /// reference back, or the retirement's decrement sees this reference and the mapping stays: never a reference to
    /// an unmapped segment. A reference taken just before retirement is a reader that was already there.
    /// </remarks>
    internal bool TryAcquire()
    {
        if (_retired)
        {
            return false;
        }

        var count = Volatile.Read(ref _refCount);
        while (count > 0)
        {
            var seen = Interlocked.CompareExchange(ref _refCount, count + 1, count);
            if (seen == count)
            {
                if (_retired)
                {
                    Release();
                    return false;
                }

                return true;
            }

            count = seen;
        }

        return false;
    }

    /// <summary>Drops a reference; the last one unmaps.</summary>
    internal void Release()
    {
        if (Interlocked.Decrement(ref _refCount) == 0)
        {
            Unmap();
        }
    }

    /// <summary>
    /// Takes the segment out of the journal (retention, or an empty segment replaced at roll), after it has left the
    /// journal's list: no new reader acquires it, and the journal's reference is dropped. Readers that hold it read on
    /// to its end; the last one's <see cref="Release"/> unmaps (at once when none holds it). Once per segment.
    /// </summary>
    internal void Retire()
    {
        _retired = true;
        Release();
    }

    /// <summary><c>msync(MS_SYNC)</c> of the pages holding bytes [<paramref name="from"/>, <paramref name="to"/>).</summary>
    internal void Sync(int from, int to)
    {
        var start = from & ~(PageSize - 1);
        if (to <= start)
        {
            return;
        }

        if (Native.Msync(_base + start, (nuint)(to - start), Native.MsSync) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new JournalException(JournalErrorCode.IoError, $"msync of '{FilePath}' [{start}, {to}) failed: {Native.Describe(errno)}");
        }
    }

    /// <summary>Syncs all records, then writes and syncs the seal trailer (order matters: a seal promises synced data).</summary>
    internal void Seal(long sealedUnixMs)
    {
        var durable = Durable;
        Sync(SegmentHeader.Size, PositionOf(durable));
        SegmentHeader.WriteSeal(WritableBytes, CountOf(durable), PositionOf(durable), LastTimestamp, sealedUnixMs, SegmentHeader.SealFlagNewestTimestamp);
        Sync(0, SegmentHeader.Size);
        _sealed = true;
        AdviseReadOnly();
    }

    /// <summary>Zeroes [<paramref name="from"/>, <paramref name="to"/>) and syncs it (recovery truncation).</summary>
    internal void ZeroAndSync(int from, int to)
    {
        if (to > from)
        {
            WritableBytes.Slice(from, to - from).Clear();
            Sync(from, to);
        }
    }

    private void Unmap()
    {
        if (Interlocked.Exchange(ref _unmapped, 1) != 0)
        {
            return;
        }

        var mapping = Interlocked.Exchange(ref _base, 0);
        if (mapping != 0)
        {
            _ = Native.Munmap(mapping, _mappedLength);
        }

        _handle.Dispose();
    }

    /// <summary>Unmaps regardless of references (journal dispose with no readers left, recovery failures).</summary>
    internal void ForceUnmap() => Unmap();
}
