using System.Runtime.InteropServices;

namespace FastBroker.Journal.Internal;

/// <summary>
/// The few libc calls the journal needs, as source-generated P/Invoke (no runtime marshalling stubs, so
/// native AOT and trimming are safe). Linux only: <c>posix_fallocate</c> reserves blocks before the writer stores
/// into a range of a mapped segment, so that writing into the mapping can never hit ENOSPC (which would be a SIGBUS,
/// not an error).
/// </summary>
internal static unsafe partial class Native
{
    private const string Libc = "libc";

    internal const int ProtRead = 0x1;
    internal const int ProtWrite = 0x2;
    internal const int MapShared = 0x01;
    internal const int MapPrivate = 0x02;
    internal const int MapFixed = 0x10;
    internal const int MapAnonymous = 0x20;
    internal const int ProtNone = 0x0;
    internal const int MadvNormal = 0;
    internal const int MadvRandom = 1;
    internal const int MadvHugePage = 14;
    internal const int MadvNoHugePage = 15;
    internal const int MsAsync = 1;
    internal const int MsSync = 4;
    internal const int MadvSequential = 2;
    internal const int MadvWillNeed = 3;
    internal const int MadvPopulateWrite = 23;

    internal const int SeekData = 3;
    internal const int SeekHole = 4;

    internal const int EIntr = 4;
    internal const int ENxio = 6;
    internal const int EInval = 22;
    internal const int EOpNotSupp = 95;
    internal const int EAgain = 11;
    internal const int EFBig = 27;
    internal const int ENoSpc = 28;
    internal const int EDQuot = 122;

    /// <summary>Returns an errno value directly (0 on success); does not set errno.</summary>
    [LibraryImport(Libc, EntryPoint = "posix_fallocate")]
    internal static partial int PosixFallocate(int fd, long offset, long length);

    /// <summary>The system call (-1 and errno on failure); unlike posix_fallocate, never emulated.</summary>
    [LibraryImport(Libc, EntryPoint = "fallocate", SetLastError = true)]
    internal static partial int Fallocate(int fd, int mode, long offset, long length);

    [LibraryImport(Libc, EntryPoint = "lseek", SetLastError = true)]
    internal static partial long Lseek(int fd, long offset, int whence);

    [LibraryImport(Libc, EntryPoint = "mmap", SetLastError = true)]
    internal static partial nint Mmap(nint address, nuint length, int protection, int flags, int fd, long offset);

    [LibraryImport(Libc, EntryPoint = "munmap", SetLastError = true)]
    internal static partial int Munmap(nint address, nuint length);

    [LibraryImport(Libc, EntryPoint = "msync", SetLastError = true)]
    internal static partial int Msync(nint address, nuint length, int flags);

    [LibraryImport(Libc, EntryPoint = "nanosleep")]
    private static partial int NanoSleep(long* request, long* remaining);

    /// <summary>
    /// Sleeps about <paramref name="nanoseconds"/> (plus the thread's timer slack, 50 µs by default): unlike
    /// <c>sched_yield</c>, the thread leaves the run queue, so whatever else is runnable on its CPU runs meanwhile.
    /// </summary>
    internal static void SleepNanoseconds(long nanoseconds)
    {
        if (!OperatingSystem.IsLinux())
        {
            Thread.Sleep(0);
            return;
        }

        var request = stackalloc long[2]; // struct timespec { time_t tv_sec; long tv_nsec; } on 64-bit Linux
        request[0] = nanoseconds / 1_000_000_000;
        request[1] = nanoseconds % 1_000_000_000;
        _ = NanoSleep(request, null);
    }

    [LibraryImport(Libc, EntryPoint = "madvise", SetLastError = true)]
    internal static partial int Madvise(nint address, nuint length, int advice);

    [LibraryImport(Libc, EntryPoint = "fdatasync", SetLastError = true)]
    internal static partial int Fdatasync(int fd);

    [LibraryImport(Libc, EntryPoint = "fsync", SetLastError = true)]
    internal static partial int Fsync(int fd);

    [LibraryImport(Libc, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int Open(string path, int flags);

    [LibraryImport(Libc, EntryPoint = "close", SetLastError = true)]
    internal static partial int Close(int fd);

    internal const int SchedIdle = 5;

    [LibraryImport(Libc, EntryPoint = "sched_setscheduler", SetLastError = true)]
    internal static partial int SchedSetScheduler(int pid, int policy, ref int priority);

    /// <summary>
    /// Puts the calling thread in <c>SCHED_IDLE</c>: it runs on CPU time no other thread wants, and any other thread
    /// that becomes runnable preempts it at once. False where that is refused or unsupported (it then stays as is).
    /// </summary>
    internal static bool TrySetIdlePriority()
    {
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }

        var priority = 0;
        return SchedSetScheduler(0, SchedIdle, ref priority) == 0; // pid 0: the calling thread
    }

    internal const int AtFdCwd = -100;
    internal const int StatxIno = 0x100;
    internal const int ENoEnt = 2;

    /// <summary>
    /// <c>statx</c> (glibc 2.28, Linux 4.11): unlike <c>stat</c>, its buffer has one layout on every architecture and
    /// it gives the device as major and minor, as <c>/proc/locks</c> prints it. <paramref name="buffer"/> is 256 bytes.
    /// </summary>
    [LibraryImport(Libc, EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int Statx(int directoryFd, string path, int flags, int mask, byte* buffer);

    /// <summary>
    /// The device (major, minor) and inode of <paramref name="path"/>, without opening it (an open could take a lock
    /// someone else needs). False with the errno when it fails (ENOENT: no such file).
    /// </summary>
    /// <exception cref="EntryPointNotFoundException">The C library has no <c>statx</c> (glibc before 2.28).</exception>
    internal static bool TryGetFileId(string path, out (uint Major, uint Minor, ulong Inode) id, out int errno)
    {
        // struct statx: stx_ino at byte 32, stx_dev_major at 136, stx_dev_minor at 140 (linux/stat.h).
        var buffer = stackalloc byte[256];
        if (Statx(AtFdCwd, path, 0, StatxIno, buffer) != 0)
        {
            (id, errno) = (default, Marshal.GetLastPInvokeError());
            return false;
        }

        id = (*(uint*)(buffer + 136), *(uint*)(buffer + 140), *(ulong*)(buffer + 32));
        errno = 0;
        return true;
    }

    /// <summary>A second name for a file (-1 and errno on failure: EXDEV across filesystems, EPERM where unsupported).</summary>
    [LibraryImport(Libc, EntryPoint = "link", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int Link(string existing, string newPath);

    [LibraryImport(Libc, EntryPoint = "sendfile", SetLastError = true)]
    internal static partial nint Sendfile(int outFd, int inFd, ref long offset, nuint count);

    /// <summary>A readable "No space left on device (28)" for an errno value.</summary>
    internal static string Describe(int errno) => $"{Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})";

    /// <summary>
    /// The cause a <see cref="JournalException"/> carries for a failed call: an <see cref="IOException"/> with the errno
    /// as its HResult, as .NET gives one, so that callers tell a shortage (EMFILE, ENOMEM…) from damage by it.
    /// </summary>
    internal static IOException Cause(int errno) => new(Describe(errno), errno);

    /// <summary>fsyncs a directory so that a newly created (or deleted) file name survives power loss.</summary>
    internal static void SyncDirectory(string directory)
    {
        // .NET will not open a directory as a file handle; O_RDONLY | O_CLOEXEC (same value on x64 and arm64).
        var fd = Open(directory, 0x80000);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new JournalException(JournalErrorCode.IoError, $"open of directory '{directory}' failed: {Describe(errno)}", Cause(errno));
        }

        try
        {
            if (Fsync(fd) != 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                throw new JournalException(JournalErrorCode.IoError, $"fsync of directory '{directory}' failed: {Describe(errno)}");
            }
        }
        finally
        {
            _ = Close(fd);
        }
    }
}
