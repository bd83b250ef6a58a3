using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace FastBroker.Journal.Internal;

// Ahead of the writer: disk blocks (fallocate, or glibc's emulation where the file system has none) and pre-faulted pages.
internal sealed unsafe partial class Segment
{
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
                : new JournalException(JournalErrorCode.IoError, $"fallocate of '{path}' failed: {Native.Describe(err)}", Native.Cause(err));
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
                : new JournalException(JournalErrorCode.IoError, $"posix_fallocate of '{path}' failed: {Native.Describe(err)}", Native.Cause(err));
        }
    }

    /// <summary>
    /// The range still to be appended, [<paramref name="from"/>, end) rounded to whole huge pages, is advised
    /// <c>MADV_RANDOM</c>: a fault there (the pre-fault thread's populate, or the writer's own when it is ahead) then
    /// reads no ahead. Page-cache readahead of a range that is all fallocated blocks is zeroing page after page, and with
    /// this disk's 8 MiB readahead window one write fault zeroed up to 8 MiB at once (measured: the writer 10-15 ms in
    /// <c>filemap_fault</c> → <c>page_cache_ra_order</c> → <c>zero_user_segments</c> at every 8 MiB of journal, or the
    /// pre-fault thread holding a CPU that long). Now one fault costs one folio (a 2 MiB one on a huge mapping, as
    /// before). Best effort: a kernel that refuses the advice only reads ahead as before.
    /// </summary>
    internal void AdviseAppendOnly(int from)
    {
        if (_appendAdvised || !OperatingSystem.IsLinux())
        {
            return;
        }

        _appendAdvised = true;
        var unit = _mappedLength >= (nuint)AllocationUnit ? AllocationUnit : PageSize; // whole huge pages where it may have them
        var start = (long)(((ulong)from + (ulong)unit - 1) & ~(ulong)(unit - 1));
        if (start < (long)_mappedLength)
        {
            _ = Native.Madvise(_base + (nint)start, _mappedLength - (nuint)start, Native.MadvRandom);
        }
    }

    /// <summary>
    /// Sealed: no more appends, so readers get readahead back (<c>MADV_NORMAL</c>), for when its pages have left the
    /// page cache and a subscriber or the replicator reads it from the disk. Flusher thread, holding a reference.
    /// </summary>
    internal void AdviseReadOnly()
    {
        if (_appendAdvised && OperatingSystem.IsLinux())
        {
            _appendAdvised = false;
            _ = Native.Madvise(_base, _mappedLength, Native.MadvNormal);
        }
    }

    /// <summary>
    /// The mapping is placed at a 2 MiB-aligned address and is at least that long, so the kernel may give it huge
    /// page-cache folios (see <see cref="Map"/>); <see cref="SetTailFolios"/> chooses whether it does.
    /// </summary>
    internal bool HugeAligned => _mappedLength >= (nuint)AllocationUnit && (_base & (AllocationUnit - 1)) == 0;

    /// <summary>Whether the range still to be appended takes huge (2 MiB) page-cache folios; see <see cref="SetTailFolios"/>.</summary>
    internal bool TailHuge => _tailHuge;

    /// <summary>
    /// Chooses the page-cache folio size for the range still to be appended, [<paramref name="from"/>, end) rounded up
    /// to whole huge pages: 2 MiB (<c>MADV_HUGEPAGE</c>) or 4 KiB (<c>MADV_NOHUGEPAGE</c>). A 2 MiB folio is one fault
    /// and one zeroing of 2 MiB: eight times the populate throughput of 4 KiB pages on this project's VMs, which a
    /// journal writing hundreds of MB/s needs, but a zeroing nobody can split, ~0.5-1 ms of kernel time in one piece
    /// that displaces whatever runs on that CPU once per 2 MiB (measured: latency-100k p99 1.2-2.6 ms with huge
    /// folios, 150-320 µs with 4 KiB ones). Folios already in the page cache keep their size. Pre-fault thread only;
    /// a no-op when the choice is already in force or the mapping is not huge-aligned. Best effort: a refused advice
    /// leaves the folios as they were.
    /// </summary>
    internal void SetTailFolios(int from, bool huge)
    {
        huge &= UseHugePages;
        if (huge == _tailHuge || !OperatingSystem.IsLinux() || !HugeAligned)
        {
            return;
        }

        _tailHuge = huge;
        var start = (long)(((ulong)Math.Max(0, from) + AllocationUnit - 1) & ~(ulong)(AllocationUnit - 1));
        if (start < (long)_mappedLength)
        {
            _ = Native.Madvise(_base + (nint)start, _mappedLength - (nuint)start, huge ? Native.MadvHugePage : Native.MadvNoHugePage);
        }
    }

    /// <summary>The append range is advised <c>MADV_RANDOM</c> (tests read it; <c>/proc/self/smaps</c> shows "rr").</summary>
    internal bool AppendAdvised => _appendAdvised;

    /// <summary>Where the mapping starts (tests: to find it in <c>/proc/self/smaps</c>).</summary>
    internal nint MappingAddress => _base;

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
}
