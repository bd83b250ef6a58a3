using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace FastBroker.Journal.Internal;

/// <summary>
/// One segment file, pre-allocated with <c>posix_fallocate</c> and mapped <c>MAP_SHARED</c> for its lifetime.
/// Reference counted: the journal holds one reference, each reader positioned in it one more; the mapping is
/// removed only when the count reaches zero, so retention can never unmap a segment under a reader.
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

    private readonly SafeFileHandle _handle;
    private readonly nuint _mappedLength;
    private nint _base;
    private int _refCount = 1;
    private int _unmapped;
    private long _published;
    private long _durable;
    private volatile bool _closed;
    private volatile bool _sealed;
    private long _lastTimestamp;

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

    internal long Published => Volatile.Read(ref _published);

    internal long Durable => Volatile.Read(ref _durable);

    internal bool IsClosed => _closed;

    internal bool IsSealed => _sealed;

    internal long LastTimestamp => Volatile.Read(ref _lastTimestamp);

    /// <summary>Set at creation; the flusher fsyncs the directory before counting records in it as durable.</summary>
    internal bool NeedsDirectorySync { get; set; }

    /// <summary>How far the flusher has pre-faulted the mapping (flusher thread only).</summary>
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
            var fd = (int)handle.DangerousGetHandle();
            int err;
            do
            {
                err = Native.PosixFallocate(fd, 0, size);
            }
            while (err == Native.EIntr);

            if (err != 0)
            {
                throw err is Native.ENoSpc or Native.EDQuot or Native.EFBig
                    ? new JournalFullException(path, size, Native.Describe(err))
                    : new JournalException(JournalErrorCode.IoError, $"posix_fallocate of '{path}' failed: {Native.Describe(err)}");
            }

            var mapping = Map(handle, (nuint)size, writable: true, path);
            return new Segment(path, handle, mapping, (nuint)size, blank, writable: true, new SparseIndex(indexCapacity))
            {
                NeedsDirectorySync = true,
            };
        }
        catch
        {
            handle.Dispose();
            TryDelete(path);
            throw;
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
                    var err = Native.PosixFallocate((int)handle.DangerousGetHandle(), 0, header.SegmentSize);
                    if (err != 0)
                    {
                        throw err is Native.ENoSpc or Native.EDQuot
                            ? new JournalFullException(path, header.SegmentSize, Native.Describe(err))
                            : new JournalException(JournalErrorCode.IoError, $"posix_fallocate of '{path}' failed: {Native.Describe(err)}");
                    }
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

    /// <summary>Adds a reader's reference; false once the segment has been retired.</summary>
    internal bool TryAcquire()
    {
        var count = Volatile.Read(ref _refCount);
        while (count > 0)
        {
            var seen = Interlocked.CompareExchange(ref _refCount, count + 1, count);
            if (seen == count)
            {
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

    /// <summary>Retention: succeeds only when the journal's own reference is the only one, and unmaps.</summary>
    internal bool TryRetire()
    {
        if (Interlocked.CompareExchange(ref _refCount, 0, 1) != 1)
        {
            return false;
        }

        Unmap();
        return true;
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
