using FastBroker.Journal.Internal;

namespace FastBroker.Journal;

/// <summary>dump and verify when a segment file they listed is gone by the time they read it.</summary>
public static partial class JournalInspector
{
    /// <summary>
    /// Tests: called on the calling thread with each segment file's path after the directory was listed and before the
    /// file is opened (where retention of an open journal can remove it).
    /// </summary>
    [ThreadStatic]
    internal static Action<string>? t_beforeSegmentOpen;

    /// <summary>
    /// A listed segment file (base offset <paramref name="baseOffset"/>) was gone when it came to be read. It is one
    /// retention removed, and skipped, when a process has the journal open and no older segment file is left in the
    /// directory: retention removes whole segments, the oldest first, and only while the journal is open. Anything else
    /// is <see cref="JournalSegmentRemovedException"/>.
    /// </summary>
    private static void SkipIfRemovedByRetention(string directory, string path, long baseOffset, OpenProbe probe, List<string> removedWhileReading)
    {
        var older = JournalRecovery.ListSegmentFiles(directory).Where(f => f.BaseOffset < baseOffset).Select(f => Path.GetFileName(f.Path)).FirstOrDefault();
        if (older is not null)
        {
            throw new JournalSegmentRemovedException(path, $"yet an older segment file ({older}) is still there, so it is not retention (which removes the oldest first)");
        }

        if (!probe.Now())
        {
            throw new JournalSegmentRemovedException(path, "and no process has the journal open, so it is not retention (which removes segments only while the journal is open)");
        }

        removedWhileReading.Add(path);
    }

    /// <summary>
    /// Runs an inspection of <paramref name="directory"/>, turning a file found missing after the listing (removed while
    /// it was read, other than as <see cref="SkipIfRemovedByRetention"/> skips it) into
    /// <see cref="JournalSegmentRemovedException"/>; a directory that is not there is still
    /// <see cref="DirectoryNotFoundException"/>.
    /// </summary>
    private static T Inspecting<T>(string directory, Func<T> inspect)
    {
        try
        {
            return inspect();
        }
        catch (IOException e) when (e is FileNotFoundException or DirectoryNotFoundException && Directory.Exists(directory))
        {
            throw new JournalSegmentRemovedException((e as FileNotFoundException)?.FileName ?? directory, "after it was listed", e);
        }
    }
}
