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
/// so retention can never unmap a segment under a reader.
/// </summary>
/// <remarks>
/// Progress is published as one packed 64-bit word, <c>(recordCount &lt;&lt; 32) | endPosition</c>, so that
/// (count, position) pairs are always read consistently: <see cref="Published"/> by the writer after every
/// append (release), <see cref="Durable"/> by whoever makes records durable (the flusher, or the writer under
/// <see cref="DurabilityPolicy.None"/>). Readers never go past <see cref="Durable"/>.
/// </remarks>
internal sealed unsafe class Segment
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

    /// <summary>Sets both marks (recovery, and the writer under the None policy at roll).</summary>
    internal void SetRecovered(long packed, long lastTimestamp, bool isSealed)
    {
        _lastTimestamp = lastTimestamp;
        _published = packed;
        _durable = packed;
        _sealed = isSealed;
        _closed = isSealed;
    }

    internal void Close() => _closed = true;

    /// <summary>Creates, pre-allocates (the disk-full check), maps and stamps a new segment.</summary>
    internal static Segment Create(string path, in SegmentHeader header, int indexCapacity)
    {
        var segment = CreateBlank(path, header.SegmentSize, indexCapacity);
        segment.Stamp(header);
        return segment;
    }

    /// <summary>
    /// A spare segment for the flusher to prepare ahead of the writer: allocated and mapped under a temporary
    /// name, no header yet. <see cref="Adopt"/> names and stamps it when the writer rolls.
    /// </summary>
    internal static Segment CreateBlank(string path, int size, int indexCapacity)
    {
        var blank = new SegmentHeader(0, -1, size, 0);
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read);
        }
        catch (IOException e) when (IsNoSpace(e))
        {
            throw new JournalFullException(path, size, e.Message);
        }

        try
        {
            var first = Math.Min(size, AllocationUnit);
            var native = TryAllocateNative(handle, path, 0, first); // the header page, and a full disk fails here
            if (!native)
            {
                Allocate(handle, path, 0, size); // no native fallocate: the whole file now, nobody else has it yet
                first = size;
            }

            RandomAccess.SetLength(handle, size);
            var mapping = Map(handle, (nuint)size, writable: true, path);
            var segment = new Segment(path, handle, mapping, (nuint)size, blank, writable: true, new SparseIndex(indexCapacity))
            {
                NeedsDirectorySync = true,
            };
            segment._allocatedTo = first;
            return segment;
        }
        catch
        {
            handle.Dispose();
            TryDelete(path);
            throw;
        }
    }

    /// <summary>
    /// Gives disk blocks to [<see cref="AllocatedTo"/>, <paramref name="to"/>) rounded up to
    /// <see cref="AllocationUnit"/> (at most the segment size). Writer or pre-fault thread.
    /// </summary>
    /// <exception cref="JournalFullException">The disk is full; nothing was written.</exception>
    internal void AllocateTo(int to)
    {
        var from = Volatile.Read(ref _allocatedTo);
        if (to <= from)
        {
            return;
        }

        // No lock: the pre-fault thread runs at SCHED_IDLE, and a writer waiting on a lock it holds would wait until
        // the machine is idle (priority inversion). A native fallocate of an allocated range is a no-op, so two
        // threads may overlap; [0, from) was allocated when read, so [0, end) is once this call returns.
        var end = (int)Math.Min(Size, ((long)to + AllocationUnit - 1) & ~(long)(AllocationUnit - 1));
        if (!TryAllocateNative(_handle, FilePath, from, end - from))
        {
            AllocateEmulated();
            return;
        }

        var seen = from;
        while (seen < end)
        {
            var previous = Interlocked.CompareExchange(ref _allocatedTo, end, seen);
            if (previous == seen)
            {
                break;
            }

            seen = previous;
        }
    }

    /// <summary>The end of the last data extent (<c>SEEK_DATA</c>/<c>SEEK_HOLE</c>), or <paramref name="length"/> when unknown.</summary>
    private static long DataEnd(SafeFileHandle handle, long length)
    {
        var fd = (int)handle.DangerousGetHandle();
        long end = 0, position = 0;
        while (position < length)
        {
            var data = Native.Lseek(fd, position, Native.SeekData);
            if (data < 0)
            {
                return Marshal.GetLastPInvokeError() == Native.ENxio ? end : length; // ENXIO: no data after position
            }

            var hole = Native.Lseek(fd, data, Native.SeekHole);
            if (hole <= data)
            {
                return length;
            }

            end = position = hole;
        }

        return Math.Min(end, length);
    }

    /// <summary>
    /// <c>fallocate(2)</c> itself, never glibc's emulation: the emulation writes a zero byte into every block whose
    /// first byte reads zero, which races with the writer's stores into a range another thread already allocated.
    /// False when the file system has no fallocate (ext3-style inodes, NFSv3, some FUSE).
    /// </summary>
    private static bool TryAllocateNative(SafeFileHandle handle, string path, long offset, long length)
    {
        var fd = (int)handle.DangerousGetHandle();
        int err;
        do
        {
            err = Native.Fallocate(fd, 0, offset, length) == 0 ? 0 : Marshal.GetLastPInvokeError();
        }
        while (err == Native.EIntr);

        if (err is Native.EOpNotSupp)
        {
            return false;
        }

        if (err != 0)
        {
            throw err is Native.ENoSpc or Native.EDQuot or Native.EFBig
                ? new JournalFullException(path, length, Native.Describe(err))
                : new JournalException(JournalErrorCode.IoError, $"fallocate of '{path}' failed: {Native.Describe(err)}");
        }

        return true;
    }

    /// <summary>
    /// No native fallocate: reserve the rest of the segment at once with glibc's emulation, under a lock and before
    /// <see cref="AllocatedTo"/> moves, so nobody stores into the range it writes (as the old whole-file allocation did).
    /// </summary>
    private void AllocateEmulated()
    {
        lock (_emulationLock)
        {
            var from = _allocatedTo;
            if (from < Size)
            {
                Allocate(_handle, FilePath, from, Size - from);
                Volatile.Write(ref _allocatedTo, Size);
            }
        }
    }

    private static void Allocate(SafeFileHandle handle, string path, long offset, long length)
    {
        var fd = (int)handle.DangerousGetHandle();
        int err;
        do
        {
            err = Native.PosixFallocate(fd, offset, length);
        }
        while (err == Native.EIntr);

        if (err != 0)
        {
            throw err is Native.ENoSpc or Native.EDQuot or Native.EFBig
                ? new JournalFullException(path, length, Native.Describe(err))
                : new JournalException(JournalErrorCode.IoError, $"posix_fallocate of '{path}' failed: {Native.Describe(err)}");
        }
    }

    /// <summary>Renames a prepared blank segment to its final name and writes its header (writer thread, at roll).</summary>
    internal void Adopt(string path, in SegmentHeader header)
    {
        File.Move(FilePath, path);
        FilePath = path;
        Stamp(header);
    }

    private void Stamp(in SegmentHeader header)
    {
        BaseOffset = header.BaseOffset;
        Epoch = header.Epoch;
        CreatedUnixMs = header.CreatedUnixMs;
        header.Write(WritableBytes);
    }

    /// <summary>
    /// Opens an existing segment. Returns null (file left untouched) when the identity header is invalid;
    /// <paramref name="error"/> is null when the header bytes are all zero (a creation that never finished).
    /// A writable open restores a truncated file to its full size (the missing bytes read as zero).
    /// </summary>
    internal static Segment? Open(string path, bool writable, int indexCapacity, out string? error, out bool unsupported)
    {
        var handle = File.OpenHandle(path, FileMode.Open, writable ? FileAccess.ReadWrite : FileAccess.Read, FileShare.ReadWrite);
        try
        {
            var length = RandomAccess.GetLength(handle);
            Span<byte> headerBytes = stackalloc byte[SegmentHeader.Size];
            var read = RandomAccess.Read(handle, headerBytes, 0);
            if (!SegmentHeader.TryRead(headerBytes.Slice(0, read), out var header, out error, out unsupported))
            {
                if (error is null && length > SegmentHeader.Size && !IsAllZero(handle, length))
                {
                    error = "segment header is blank but the file holds data";
                }

                handle.Dispose();
                return null;
            }

            var mapLength = (long)header.SegmentSize;
            if (length < header.SegmentSize)
            {
                if (writable)
                {
                    RandomAccess.SetLength(handle, header.SegmentSize); // blocks come with AllocateTo, before any write
                }
                else
                {
                    mapLength = length;
                }
            }

            var mapping = Map(handle, (nuint)mapLength, writable, path);
            return new Segment(path, handle, mapping, (nuint)mapLength, header, writable, new SparseIndex(indexCapacity));
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

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
        SegmentHeader.WriteSeal(WritableBytes, CountOf(durable), PositionOf(durable), LastTimestamp, sealedUnixMs);
        Sync(0, SegmentHeader.Size);
        _sealed = true;
    }

    /// <summary>
    /// Pre-faults pages for writing (<c>MADV_POPULATE_WRITE</c>), then touches each page once from user space:
    /// on a VM the first user write to a page costs microseconds even after the kernel populated it (measured
    /// here: 64 MiB copies at 0.5 GB/s on the first pass, 6-24 GB/s after). The touch is a compare-exchange of
    /// 0 with 0, which never changes a byte the writer may already have put there. Returns false when the
    /// kernel lacks MADV_POPULATE_WRITE (before 5.14).
    /// </summary>
    internal bool Prefault(int from, int to)
    {
        var start = from & ~(PageSize - 1);
        if (to <= start)
        {
            return true;
        }

        var populated = Native.Madvise(_base + start, (nuint)(to - start), Native.MadvPopulateWrite) == 0;
        if (!populated && Marshal.GetLastPInvokeError() != Native.EInval)
        {
            // Not "unsupported" (EINVAL before 5.14) but a failed fault: touching those pages would be a SIGBUS.
            throw new JournalException(JournalErrorCode.IoError, $"pre-faulting '{FilePath}' [{start}, {to}) failed: {Native.Describe(Marshal.GetLastPInvokeError())}");
        }

        for (var page = start; page < to; page += PageSize)
        {
            _ = Interlocked.CompareExchange(ref *(int*)(Pointer + page), 0, 0);
        }

        return populated;
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

    /// <summary>
    /// The valid records from the first record position of a file whose header cannot be read (a blank identity
    /// block), taking <paramref name="baseOffset"/> from its name; the scan stops at the first invalid record. For
    /// recovery's report of what it removes and verify's count of it, nothing else.
    /// </summary>
    internal static SegmentScanner.Result ScanWithoutHeader(string path, long baseOffset)
    {
        var none = new SegmentScanner.Result { EndPosition = SegmentHeader.Size };
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var length = Math.Min(RandomAccess.GetLength(handle), 1L << 30);
        if (length <= SegmentHeader.Size)
        {
            return none;
        }

        var mapping = Native.Mmap(0, (nuint)length, Native.ProtRead, Native.MapShared, (int)handle.DangerousGetHandle(), 0);
        if (mapping == -1)
        {
            return none;
        }

        try
        {
            var bytes = new ReadOnlySpan<byte>((void*)mapping, (int)Math.Min(length, DataEnd(handle, length)));
            return SegmentScanner.Scan(bytes, SegmentHeader.Size, bytes.Length, baseOffset, 0, verifyCrc: true, null, int.MaxValue);
        }
        finally
        {
            _ = Native.Munmap(mapping, (nuint)length);
        }
    }

    /// <summary>Unmaps regardless of references (journal dispose with no readers left, recovery failures).</summary>
    internal void ForceUnmap() => Unmap();

    /// <summary>Huge (2 MiB) file pages where the kernel and filesystem support them; see <see cref="Map"/>.</summary>
    internal static bool UseHugePages { get; set; } = true;

    /// <summary>
    /// Maps the file shared. The mapping is placed at a 2 MiB-aligned address with <c>MADV_HUGEPAGE</c> so that a
    /// kernel with large page-cache folios (ext4, xfs, tmpfs on 6.x) maps it with 2 MiB entries: one fault and one
    /// TLB entry per 2 MiB instead of 512. On this project's VMs the first write to each 4 KiB page costs
    /// microseconds (64 MiB written at 0.5 GB/s with 4 KiB pages, 4-8 GB/s with 2 MiB ones). Elsewhere it is
    /// a harmless hint.
    /// </summary>
    private static nint Map(SafeFileHandle handle, nuint length, bool writable, string path)
    {
        const nint Huge = 2 << 20;
        var prot = Native.ProtRead | (writable ? Native.ProtWrite : 0);
        var fd = (int)handle.DangerousGetHandle();
        nint mapping = -1;
        if (UseHugePages && length >= (nuint)Huge)
        {
            var reserve = Native.Mmap(0, length + (nuint)Huge, Native.ProtNone, Native.MapPrivate | Native.MapAnonymous, -1, 0);
            if (reserve != -1)
            {
                var aligned = (reserve + Huge - 1) & ~(Huge - 1);
                mapping = Native.Mmap(aligned, length, prot, Native.MapShared | Native.MapFixed, fd, 0);
                if (mapping == -1)
                {
                    _ = Native.Munmap(reserve, length + (nuint)Huge);
                }
                else
                {
                    if (aligned > reserve)
                    {
                        _ = Native.Munmap(reserve, (nuint)(aligned - reserve));
                    }

                    var tail = (reserve + (nint)length + Huge) - (aligned + (nint)length);
                    if (tail > 0)
                    {
                        _ = Native.Munmap(aligned + (nint)length, (nuint)tail);
                    }

                    _ = Native.Madvise(mapping, length, Native.MadvHugePage);
                }
            }
        }

        if (mapping == -1)
        {
            mapping = Native.Mmap(0, length, prot, Native.MapShared, fd, 0);
        }

        if (mapping == -1)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new JournalException(JournalErrorCode.IoError, $"mmap of '{path}' ({length} bytes) failed: {Native.Describe(errno)}");
        }

        return mapping;
    }

    private static bool IsAllZero(SafeFileHandle handle, long length)
    {
        var buffer = new byte[1 << 16];
        for (long pos = 0; pos < length;)
        {
            var n = RandomAccess.Read(handle, buffer, pos);
            if (n <= 0)
            {
                break;
            }

            if (buffer.AsSpan(0, n).IndexOfAnyExcept((byte)0) >= 0)
            {
                return false;
            }

            pos += n;
        }

        return true;
    }

    internal static bool IsNoSpace(IOException e) =>
        e.HResult == Native.ENoSpc || e.Message.Contains("No space", StringComparison.OrdinalIgnoreCase);

    internal static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
