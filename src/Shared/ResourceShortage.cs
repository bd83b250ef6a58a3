using System.Runtime.InteropServices;

namespace FastBroker.Storage;

/// <summary>
/// One source file compiled into the journal, the broker and the server (linked from <c>src/Shared</c>, internal to each): tells a
/// failure the system could not do now, for want of a resource that comes back by itself (descriptors, memory, disk
/// space, a lock held elsewhere), from one about the file or the device as it is (damaged, refused, not allowed, an I/O
/// error of the device), which stays until an operator acts. The first is answered <c>ResourceExhausted</c> (retry
/// later), the second <c>StorageError</c> (docs/protocol.md, error codes).
/// </summary>
/// <remarks>
/// EIO is not a shortage: the device failed the I/O (a bad sector, a disk or its link going, a write-back error that
/// an fsync reports once and then forgets). Nothing brings it back by itself, and a client retrying it would retry for
/// ever while the disk fails under it, so it is a storage error, like damage. ENFILE (the system's table of open files
/// is full) is a shortage as EMFILE (the process's limit) is: both are "out of descriptors". The reserve check
/// (<see cref="ThrowIfInReserve"/>) knows the process's limit only; a full system table shows as ENFILE from the open.
/// </remarks>
internal static partial class ResourceShortage
{
    // Linux errno values (asm-generic/errno-base.h, errno.h): .NET gives an IOException the errno as its HResult when no
    // narrower exception fits (ENOENT, EACCES and the like have their own types: not shortages). EIO (5) is not here:
    // a device's I/O error is a storage error (see the remarks).
    private const int Eagain = 11;
    private const int Enomem = 12;
    private const int Enfile = 23;
    private const int Emfile = 24;
    private const int Enospc = 28;
    private const int Edquot = 122;

    /// <summary>
    /// What <paramref name="e"/> (or an exception inside it) ran short of ("out of descriptors", "out of memory", "out
    /// of disk space", "a lock held elsewhere"), or null when it is not a shortage (damage, permissions, a missing
    /// file, an I/O error of the device: EIO).
    /// </summary>
    public static string? Describe(Exception? e)
    {
        for (var depth = 0; e is not null && depth < 8; e = e.InnerException, depth++)
        {
            switch (e)
            {
                case OutOfMemoryException:
                    return "out of memory";
                case UnauthorizedAccessException or InvalidDataException:
                    return null;
                case IOException io when io.GetType() == typeof(IOException):
                    switch (io.HResult)
                    {
                        case Emfile or Enfile:
                            return "out of descriptors";
                        case Enomem:
                            return "out of memory";
                        case Enospc or Edquot:
                            return "out of disk space";
                        case Eagain:
                            return "a lock held elsewhere";
                        default:
                            break;
                    }

                    break;
                default:
                    break;
            }
        }

        return null;
    }

    /// <summary>True when <see cref="Describe"/> names a shortage.</summary>
    public static bool Is(Exception? e) => Describe(e) is not null;

    /// <summary>
    /// Throws an out-of-descriptors <see cref="IOException"/> (EMFILE) when <paramref name="handle"/>, just opened for
    /// <paramref name="path"/> to be held (a mapped state file, a new journal segment), is one of the last
    /// <see cref="ReservedDescriptors"/> the process may open (Linux): as a connection accepted on one is closed, a file
    /// kept open on one is refused, so that many durable subscriptions, groups or segments cannot take the descriptors
    /// the runtime needs to go on (it ends the
    /// process with "Out of memory." when a new thread finds none). The caller closes the handle.
    /// </summary>
    public static void ThrowIfInReserve(SafeHandle handle, string path)
    {
        if (!OperatingSystem.IsLinux() || GetRLimit(RlimitNoFile, out var limit) != 0 || limit.Current > int.MaxValue)
        {
            return; // not Linux, or no limit to speak of (RLIM_INFINITY is ulong.MaxValue)
        }

        var fd = (long)handle.DangerousGetHandle();
        if (fd >= (long)limit.Current - ReservedDescriptors)
        {
            throw new IOException($"Too many open files : '{path}' (descriptor {fd}; the last {ReservedDescriptors} below the limit of {limit.Current} are kept for the process)", Emfile);
        }
    }

    /// <summary>The descriptors no connection (SocketAccept), no held state file and no new journal segment may take: the same 64.</summary>
    internal const int ReservedDescriptors = 64;

    private const int RlimitNoFile = 7; // Linux

    [LibraryImport("libc", EntryPoint = "getrlimit")]
    private static partial int GetRLimit(int resource, out RLimit limit);

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Max;
    }
}
