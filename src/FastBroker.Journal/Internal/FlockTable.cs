using System.Globalization;

namespace FastBroker.Journal.Internal;

/// <summary>
/// The flocks the kernel lists in <c>/proc/locks</c>, one a line: <c>1: FLOCK  ADVISORY  WRITE 4242 fe:00:11731436 0 EOF</c>
/// (the holder's pid, then the locked file as device major and minor in hex and inode in decimal); a request waiting
/// for a lock has <c>-></c> before its type. Reading the table takes and asks for no lock, so it can never make a
/// process's <c>flock</c> fail, as a probe that takes one (even shared, even for microseconds) can.
/// </summary>
internal static class FlockTable
{
    /// <summary>Where Linux lists every lock held by a process visible in the reader's PID namespace.</summary>
    internal const string ProcLocks = "/proc/locks";

    /// <summary>
    /// Whether <paramref name="table"/> lists an exclusive flock (<c>FLOCK … WRITE</c>) held on the file whose device and
    /// inode are <paramref name="file"/>; null when the table cannot be read.
    /// </summary>
    internal static bool? HoldsExclusiveFlock((uint Major, uint Minor, ulong Inode) file, string table = ProcLocks)
    {
        try
        {
            return HoldsExclusiveFlock(File.ReadLines(table), file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Whether <paramref name="lines"/> (those of <c>/proc/locks</c>) list an exclusive flock held on <paramref name="file"/>.</summary>
    internal static bool HoldsExclusiveFlock(IEnumerable<string> lines, (uint Major, uint Minor, ulong Inode) file)
    {
        foreach (var line in lines)
        {
            // "N:", "FLOCK", "ADVISORY", "WRITE", pid, "maj:min:inode", start, end; a waiter has "->" at [1].
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length >= 6 && fields[1] == "FLOCK" && fields[3] == "WRITE" && TryParseFileId(fields[5], out var id) && id == file)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// The pids <paramref name="table"/> lists as holding an exclusive flock on the file whose device and inode are
    /// <paramref name="file"/> (one, unless processes share the open file), in its order; null when the table cannot be
    /// read. A lock inherited by a process after its taker exited is listed under the taker's pid, and one held from
    /// outside this process's PID namespace is not listed: the answer names the holder when it can be known.
    /// </summary>
    internal static IReadOnlyList<int>? ExclusiveFlockHolders((uint Major, uint Minor, ulong Inode) file, string table = ProcLocks)
    {
        try
        {
            var holders = new List<int>();
            foreach (var line in File.ReadLines(table))
            {
                var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (fields.Length >= 6 && fields[1] == "FLOCK" && fields[3] == "WRITE" && TryParseFileId(fields[5], out var id) && id == file
                    && int.TryParse(fields[4], NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && pid > 0)
                {
                    holders.Add(pid);
                }
            }

            return holders;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// Whether a process visible in <paramref name="proc"/> has the file whose device and inode are
    /// <paramref name="file"/> open with an exclusive flock on that open file: its <c>fd/N</c> link leads to the file
    /// and its <c>fdinfo/N</c> lists the lock (<c>lock:\t1: FLOCK  ADVISORY  WRITE 0 fe:00:11731436 0 EOF</c>). Asked
    /// only when <c>/proc/locks</c> lists none: outside the initial PID namespace the kernel leaves out of
    /// <c>/proc/locks</c> a flock whose taker has exited (the PID it was taken under no longer translates), though the
    /// open file holding it lives on in a process that inherited it; <c>fdinfo</c> lists it all the same. In the initial
    /// namespace <c>/proc/locks</c> lists every flock, so this is false without a look. Processes this one may not look
    /// into (another user's, without the privilege) are passed over, as are processes that end while they are read.
    /// </summary>
    internal static bool HeldThroughAnOpenFile((uint Major, uint Minor, ulong Inode) file, string proc = "/proc")
    {
        if (InInitialPidNamespace(proc))
        {
            return false;
        }

        IEnumerable<string> processes;
        try
        {
            processes = Directory.EnumerateDirectories(proc);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }

        foreach (var process in processes)
        {
            if (!int.TryParse(Path.GetFileName(process), NumberStyles.None, CultureInfo.InvariantCulture, out _))
            {
                continue;
            }

            try
            {
                foreach (var fd in Directory.EnumerateFileSystemEntries(Path.Combine(process, "fd")))
                {
                    // statx follows the fd's link to the file it has open (without opening it).
                    if (Native.TryGetFileId(fd, out var id, out _) && id == file
                        && HoldsExclusiveFlock(File.ReadLines(Path.Combine(process, "fdinfo", Path.GetFileName(fd))).Where(l => l.StartsWith("lock:", StringComparison.Ordinal)).Select(l => l["lock:".Length..]), file))
                    {
                        return true;
                    }
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The process ended, or is not this one's to look into.
            }
        }

        return false;
    }

    /// <summary>Whether this process is in the initial PID namespace (its <c>ns/pid</c> is the kernel's fixed <c>pid:[4026531836]</c>).</summary>
    private static bool InInitialPidNamespace(string proc)
    {
        try
        {
            return new FileInfo(Path.Combine(proc, "self", "ns", "pid")).LinkTarget == "pid:[4026531836]";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static bool TryParseFileId(string text, out (uint Major, uint Minor, ulong Inode) id)
    {
        id = default;
        var parts = text.Split(':');
        return parts.Length == 3
            && uint.TryParse(parts[0], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out id.Major)
            && uint.TryParse(parts[1], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out id.Minor)
            && ulong.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out id.Inode);
    }
}
