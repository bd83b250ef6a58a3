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
