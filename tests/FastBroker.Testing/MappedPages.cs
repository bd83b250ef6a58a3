namespace FastBroker.Testing;

/// <summary>
/// What the kernel says about this process's mappings of a file (<c>/proc/self/smaps</c>): a page stored into through
/// a shared mapping is dirty until it is written back to disk, by an <c>msync</c> (at once) or by the kernel's writeback
/// (after <c>vm.dirty_expire_centisecs</c>, 30 s by default). Linux only.
/// </summary>
public static class MappedPages
{
    /// <summary>Dirty kB over every mapping of <paramref name="path"/> in this process; null when it is not mapped.</summary>
    public static long? DirtyKb(string path)
    {
        var full = Path.GetFullPath(path);
        long? dirty = null;
        var inside = false;
        foreach (var line in File.ReadLines("/proc/self/smaps"))
        {
            if (IsHeader(line))
            {
                inside = line.EndsWith(" " + full, StringComparison.Ordinal);
                if (inside)
                {
                    dirty ??= 0;
                }
            }
            else if (inside && (line.StartsWith("Shared_Dirty:", StringComparison.Ordinal) || line.StartsWith("Private_Dirty:", StringComparison.Ordinal)))
            {
                dirty += long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        return dirty;
    }

    /// <summary>
    /// Dirty kB of <paramref name="path"/>'s pages in the page cache, whoever wrote them (a <c>write</c> not yet
    /// fsync'd, a mapping not yet msynced): maps the file read-only for the look, touches each page, reads
    /// <see cref="DirtyKb"/> (which counts a page dirty in the cache also through a clean mapping of it). Null: missing or empty.
    /// </summary>
    public static long? FileDirtyKb(string path)
    {
        var length = File.Exists(path) ? new FileInfo(path).Length : 0;
        if (length == 0)
        {
            return null;
        }

        using var map = System.IO.MemoryMappedFiles.MemoryMappedFile.CreateFromFile(
            new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete),
            mapName: null, 0, System.IO.MemoryMappedFiles.MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
        using var view = map.CreateViewAccessor(0, length, System.IO.MemoryMappedFiles.MemoryMappedFileAccess.Read);
        for (long at = 0; at < length; at += 4096)
        {
            view.ReadByte(at);
        }

        return DirtyKb(path);
    }

    /// <summary>The kernel's writeback age for dirty pages (<c>vm.dirty_expire_centisecs</c>).</summary>
    public static TimeSpan WritebackAge() =>
        TimeSpan.FromMilliseconds(10 * long.Parse(File.ReadAllText("/proc/sys/vm/dirty_expire_centisecs").Trim(), System.Globalization.CultureInfo.InvariantCulture));

    // A mapping's header starts with its address range ("7f12a000-7f12b000 rw-s ..."); its fields have a name and a colon.
    private static bool IsHeader(string line)
    {
        var dash = line.IndexOf('-', StringComparison.Ordinal);
        var space = line.IndexOf(' ', StringComparison.Ordinal);
        return dash > 0 && space > dash && Uri.IsHexDigit(line[0]) && !line[..space].EndsWith(':');
    }
}
