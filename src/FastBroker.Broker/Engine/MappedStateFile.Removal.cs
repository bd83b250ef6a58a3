using System.Runtime.InteropServices;

namespace FastBroker.Engine;

// A mapped file removed from its directory (or renamed away) while it is held: telling it, and writing its bytes again
// at its path.
internal sealed unsafe partial class MappedStateFile
{
    private readonly string? _resolvedPath; // ProcFd: the file's path with every symlink resolved, as its descriptor's readlink names it
    private string? _renamedTo; // under _syncLock: where the last check found the file renamed to

    /// <summary>
    /// Where the file was renamed to, as the last <see cref="WasRemoved()"/> that returned true found it (Linux only,
    /// the descriptor's <c>readlink</c>); null when it was unlinked (or renamed where this system cannot tell the new
    /// name).
    /// </summary>
    public string? RenamedTo
    {
        get
        {
            lock (_syncLock)
            {
                return _renamedTo;
            }
        }
    }

    /// <summary>How <see cref="WasRemoved()"/> tells a removal on this system.</summary>
    internal enum RemovalCheck
    {
        /// <summary>Windows: the file is opened without <c>FileShare.Delete</c> and mapped, so it cannot be removed while held.</summary>
        None,

        /// <summary>
        /// Linux: one <c>readlink</c> of <c>/proc/self/fd/N</c>; the kernel marks an unlinked file's link " (deleted)",
        /// and names a renamed file's new path, which differs from the one the file had when it was opened (its path with
        /// every symlink resolved, so a data directory reached through a symlink is not taken for a renamed one).
        /// </summary>
        ProcFd,

        /// <summary>
        /// Other Unix systems (macOS, FreeBSD): .NET gives no file identity (device and inode) of a handle or a path, so
        /// one <c>stat</c> of the path: a removal is told while nothing is at the path, not once another file is there.
        /// </summary>
        PathExists,
    }

    /// <summary>This system's <see cref="RemovalCheck"/>.</summary>
    internal static RemovalCheck SystemRemovalCheck { get; } =
        OperatingSystem.IsLinux() ? RemovalCheck.ProcFd : OperatingSystem.IsWindows() ? RemovalCheck.None : RemovalCheck.PathExists;

    /// <summary>
    /// True when the mapped file was removed from its directory (its name unlinked; whatever was made at
    /// <see cref="Path"/> since is another file) or renamed away from its path (<c>mv workers.state workers.state.bak</c>:
    /// <see cref="RenamedTo"/> says where): updates still reach the mapping but not the file at its path, which the next
    /// open reads (nothing, or another file). False while it is at its path, and once closed. One syscall, for a close or
    /// a periodic check, not for each update: on Linux a <c>readlink</c> of its descriptor, which tells a removal or a
    /// rename even once another file is at its path; on other Unix systems a <c>stat</c> of its path, which tells either
    /// only while nothing is there (<see cref="RemovalCheck.PathExists"/>); on Windows none: a held state file cannot be
    /// removed or renamed there.
    /// </summary>
    public bool WasRemoved() => WasRemoved(SystemRemovalCheck);

    /// <summary><see cref="WasRemoved()"/> by the given check (tests run each one where the system has it).</summary>
    internal bool WasRemoved(RemovalCheck check)
    {
        lock (_syncLock)
        {
            if (_closing)
            {
                return false;
            }

            try
            {
                switch (check)
                {
                    case RemovalCheck.ProcFd:
                        var target = new FileInfo($"/proc/self/fd/{_handle.DangerousGetHandle()}").LinkTarget;
                        if (target is null)
                        {
                            return false;
                        }

                        if (target.EndsWith(" (deleted)", StringComparison.Ordinal))
                        {
                            _renamedTo = null;
                            return true;
                        }

                        if (_resolvedPath is not null && !string.Equals(target, _resolvedPath, StringComparison.Ordinal))
                        {
                            // Renamed: the kernel names the file's new path, the file at its path (if any) is another.
                            _renamedTo = target;
                            return true;
                        }

                        return false;
                    case RemovalCheck.PathExists:
                        return !File.Exists(Path);
                    default:
                        return false;
                }
            }
            catch (IOException)
            {
                return false;
            }
        }
    }

    /// <summary>
    /// Writes this file's bytes as a new file at <see cref="Path"/> (one <see cref="WasRemoved()"/> found removed) as a
    /// new state file is written (under its temporary name, flushed, renamed into place, its directory fsync'd when it has
    /// a flusher) and returns it mapped, with the same flusher. Null when a file is at the path (left as it is: it is not
    /// overwritten) or its directory's parent is gone (a topic's directory removed whole: nothing is made in it). The
    /// caller stops storing into this file first (a store made into it during the copy may miss the new one) and then
    /// closes it with <see cref="CloseSuperseded"/> (the new file holds its updates: a failure of its last msync loses
    /// nothing).
    /// </summary>
    /// <exception cref="IOException">The new file could not be written (a full disk, say); nothing is left at the path.</exception>
    public MappedStateFile? CopyToPath()
    {
        var directory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(Path))!;
        var parent = System.IO.Path.GetDirectoryName(directory);
        bool directoryCreated;
        lock (_syncLock)
        {
            ObjectDisposedException.ThrowIf(_closing, this);
            if (File.Exists(Path) || (parent is not null && !Directory.Exists(parent)))
            {
                return null;
            }

            directoryCreated = !Directory.Exists(directory);
            Directory.CreateDirectory(directory);
            if (!CreateFrom(Path, new ReadOnlySpan<byte>(_base, checked((int)Length)), _flusher))
            {
                return null;
            }
        }

        if (_flusher is not null)
        {
            SyncDirectory(directory);
            if (directoryCreated && parent is not null)
            {
                SyncDirectory(parent);
            }
        }

        var stream = new FileStream(Path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        return Map(Path, stream, Length, created: true, _flusher);
    }

    /// <summary>
    /// What the line that says a state file was written again at its path adds when the removed file's last msync
    /// failed as it was closed (<see cref="CloseSuperseded"/>): empty when it did not.
    /// </summary>
    internal static string DescribeSupersededSyncFailure(BrokerException? failure) => failure is null
        ? ""
        : $"; the removed file's last msync failed as it was closed ({failure.Message}), which loses nothing: the file written at the path holds every update, flushed to disk before it got its name, and a sync waited for completes";

    /// <summary>
    /// <paramref name="path"/> with every symlink resolved (<c>realpath</c>), as the kernel names an open file's path; a
    /// path that cannot be resolved (removed meanwhile) is resolved through its directory, and failing that is taken
    /// whole (<see cref="System.IO.Path.GetFullPath(string)"/>).
    /// </summary>
    private static string ResolvePath(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        if (RealPath(full) is { } resolved)
        {
            return resolved;
        }

        var directory = System.IO.Path.GetDirectoryName(full);
        return directory is not null && RealPath(directory) is { } resolvedDirectory
            ? System.IO.Path.Join(resolvedDirectory, System.IO.Path.GetFileName(full))
            : full;
    }

    private static string? RealPath(string path)
    {
        var resolved = RealPath(path, 0);
        if (resolved == 0)
        {
            return null;
        }

        try
        {
            return Marshal.PtrToStringUTF8(resolved);
        }
        finally
        {
            Free(resolved);
        }
    }

    [LibraryImport("libc", EntryPoint = "realpath", StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint RealPath(string path, nint resolved);

    [LibraryImport("libc", EntryPoint = "free")]
    private static partial void Free(nint pointer);
}
