using System.Globalization;
using System.Runtime.InteropServices;
using FastBroker.Journal.Internal;

namespace FastBroker.Journal;

/// <summary>
/// Keeps aside, for an operator, the segment files that an open with <see cref="JournalOptions.RepairCorruption"/> is
/// about to destroy at a damaged record: the damaged segment (the repair zeroes it from the damaged record on, or
/// deletes it) and every later one (the repair deletes them), most of whose records are intact. Nothing reads the
/// kept files back; <c>fastbroker journal dump|verify</c> read them as a journal directory. Linux (like the journal).
/// A kept directory is built under a temporary name and renamed whole (<see cref="KeepAside"/>), and
/// <see cref="KeepAsideOnce"/> keeps nothing twice, so that a process killed anywhere between the keep and the cut's
/// repair log leaves, after its next open, exactly one kept copy.
/// </summary>
public static partial class DamagedSegments
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
    /// a link (another filesystem). The files go into <c>&lt;destination&gt;.partial</c> (one left there by a keep that
    /// was killed is removed first), which is renamed to <paramref name="destination"/> once every file and it are
    /// fsynced: a directory of that name always holds every file. The rename and the parents are fsynced before it
    /// returns, so that the repair that follows never destroys what a power cut would not find kept. Call it before the
    /// repairing open, with the journal closed. Returns the names of the files kept, in offset order.
    /// </summary>
    /// <exception cref="IOException">
    /// A file could not be copied or the destination created (a full disk, above all): what was kept so far is removed
    /// (best effort: a <c>.partial</c> directory left, or left by a kill, is removed by the next
    /// <see cref="KeepAsideOnce"/> of the label), and the journal is as it was.
    /// </exception>
    /// <exception cref="JournalException"><see cref="JournalErrorCode.IoError"/>: a directory could not be synced.</exception>
    public static IReadOnlyList<string> KeepAside(string journalDirectory, string damagedSegment, string destination) =>
        KeepAsideWithSteps(journalDirectory, damagedSegment, destination, null);

    /// <summary><see cref="KeepAside"/>; <paramref name="step"/> (a test seam) is told "kept &lt;file&gt;" after each file is synced.</summary>
    internal static IReadOnlyList<string> KeepAsideWithSteps(string journalDirectory, string damagedSegment, string destination, Action<string>? step)
    {
        destination = Path.GetFullPath(destination);
        if (Directory.Exists(destination) || File.Exists(destination))
        {
            throw new IOException($"'{destination}' exists: damaged segments are kept in a new directory");
        }

        var staging = destination + PartialSuffix;
        if (Directory.Exists(staging))
        {
            Directory.Delete(staging, recursive: true); // a keep killed part-way: never a kept copy
        }

        Directory.CreateDirectory(staging);
        try
        {
            var kept = new List<string>();
            foreach (var (file, isDamaged) in FilesFrom(journalDirectory, damagedSegment))
            {
                var target = Path.Combine(staging, Path.GetFileName(file));
                if (isDamaged || Native.Link(file, target) != 0)
                {
                    Copy(file, target);
                }

                Sync(target);
                kept.Add(Path.GetFileName(file));
                step?.Invoke("kept " + Path.GetFileName(file));
            }

            Native.SyncDirectory(staging);
            Directory.Move(staging, destination);
            var parent = Path.GetDirectoryName(destination)!;
            Native.SyncDirectory(parent); // the rename, and the parent's own name below if this created it
            Native.SyncDirectory(Path.GetDirectoryName(parent)!);
            return kept;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JournalException)
        {
            TryDelete(staging);
            throw;
        }
    }

    /// <summary>
    /// The files <see cref="KeepAside"/> keeps, in offset order: the damaged segment (true)
    /// and every later one, each followed by its index file if it has one.
    /// </summary>
    private static IEnumerable<(string File, bool Damaged)> FilesFrom(string journalDirectory, string damagedSegment)
    {
        var damagedName = Path.GetFileName(damagedSegment);
        foreach (var (_, path) in JournalRecovery.ListSegmentFiles(journalDirectory))
        {
            // Segment names are the zero-padded base offset: name order is offset order.
            var order = string.CompareOrdinal(Path.GetFileName(path), damagedName);
            if (order < 0)
            {
                continue;
            }

            yield return (path, order == 0);
            var index = IndexFile.PathFor(path);
            if (File.Exists(index)) // an index not written yet: the segment is what matters
            {
                yield return (index, order == 0);
            }
        }
    }

    private static void TryDelete(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Left for the next KeepAsideOnce of the label, which removes it.
        }
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
