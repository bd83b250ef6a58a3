using System.Globalization;
using System.Runtime.InteropServices;
using FastBroker.Journal.Internal;

namespace FastBroker.Journal;

/// <summary>
/// Keeps aside, for an operator, the segment files that an open with <see cref="JournalOptions.RepairCorruption"/> is
/// about to destroy at a damaged record: the damaged segment (the repair zeroes it from the damaged record on, or
/// deletes it) and every later one (the repair deletes them), most of whose records are intact. Nothing reads the
/// kept files back; <c>fastbroker journal dump|verify</c> read them as a journal directory. Linux (like the journal).
/// </summary>
public static class DamagedSegments
{
    /// <summary>
    /// A directory for <see cref="KeepAside"/> under <paramref name="root"/>: <c>&lt;label&gt;-&lt;UTC
    /// yyyyMMddTHHmmssZ&gt;</c>, with <c>-2</c>, <c>-3</c>… after it when that name is taken (two repairs in one second).
    /// </summary>
    public static string DirectoryFor(string root, string label, DateTimeOffset time)
    {
        var stem = Path.Combine(root, $"{label}-{time.UtcDateTime.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture)}");
        var path = stem;
        for (var n = 2; Directory.Exists(path) || File.Exists(path); n++)
        {
            path = $"{stem}-{n}";
        }

        return path;
    }

    /// <summary>
    /// Puts into <paramref name="destination"/> (created with its parents; it must not exist) the segment file
    /// <paramref name="damagedSegment"/> of the journal in <paramref name="journalDirectory"/> and every later segment
    /// file, each with its index file if it has one, byte for byte as they are. The damaged segment and its index are
    /// copied (the repair changes it in place); the later files are hard links (the repair only deletes their names in
    /// the journal, so the link keeps their bytes without a copy or free space), or copies where the filesystem refuses
    /// a link (another filesystem). Every file, <paramref name="destination"/> and its two parents are fsynced before
    /// it returns, so that the repair that follows never destroys what a power cut would not find kept. Call it before
    /// the repairing open, with the journal closed. Returns the names of the files kept, in offset order.
    /// </summary>
    /// <exception cref="IOException">
    /// A file could not be copied or the destination created (a full disk, above all): what was kept so far stays in
    /// <paramref name="destination"/>, and the journal is as it was.
    /// </exception>
    /// <exception cref="JournalException"><see cref="JournalErrorCode.IoError"/>: a directory could not be synced.</exception>
    public static IReadOnlyList<string> KeepAside(string journalDirectory, string damagedSegment, string destination)
    {
        destination = Path.GetFullPath(destination);
        if (Directory.Exists(destination) || File.Exists(destination))
        {
            throw new IOException($"'{destination}' exists: damaged segments are kept in a new directory");
        }

        var damagedName = Path.GetFileName(damagedSegment);
        Directory.CreateDirectory(destination);
        var kept = new List<string>();
        foreach (var (_, path) in JournalRecovery.ListSegmentFiles(journalDirectory))
        {
            // Segment names are the zero-padded base offset: name order is offset order.
            var name = Path.GetFileName(path);
            var order = string.CompareOrdinal(name, damagedName);
            if (order < 0)
            {
                continue;
            }

            foreach (var file in (ReadOnlySpan<string>)[path, IndexFile.PathFor(path)])
            {
                if (!File.Exists(file))
                {
                    continue; // an index not written yet: the segment is what matters
                }

                var target = Path.Combine(destination, Path.GetFileName(file));
                if (order == 0 || Native.Link(file, target) != 0)
                {
                    Copy(file, target);
                }

                Sync(target);
                kept.Add(Path.GetFileName(file));
            }
        }

        Native.SyncDirectory(destination);
        var parent = Path.GetDirectoryName(destination)!;
        Native.SyncDirectory(parent); // the destination's name, and the parent's own if this created it
        Native.SyncDirectory(Path.GetDirectoryName(parent)!);
        return kept;
    }

    private static void Copy(string source, string target)
    {
        using var from = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var to = new FileStream(target, FileMode.CreateNew, FileAccess.Write, FileShare.None);
        from.CopyTo(to, 1 << 20);
    }

    private static void Sync(string path)
    {
        var fd = Native.Open(path, 0x80000); // O_RDONLY | O_CLOEXEC: fsync needs no write access
        if (fd < 0)
        {
            throw Native.Cause(Marshal.GetLastPInvokeError());
        }

        try
        {
            if (Native.Fsync(fd) != 0)
            {
                throw new IOException($"fsync of '{path}' failed: {Native.Describe(Marshal.GetLastPInvokeError())}");
            }
        }
        finally
        {
            _ = Native.Close(fd);
        }
    }
}
