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
            throw new JournalSegmentRemovedException(path, $"yet an older segment file ({older}) is still there, so it is not retention (which removes the oldest first)")
            {
                JournalOpen = probe.Now(),
            };
        }

        if (!probe.Now())
        {
            throw new JournalSegmentRemovedException(path, "and no process has the journal open, so it is not retention (which removes segments only while the journal is open)");
        }

        removedWhileReading.Add(path);
    }

    /// <summary>
    /// Runs an inspection of <paramref name="directory"/>, turning a segment file of it found missing after the listing
    /// (removed while it was read, other than as <see cref="SkipIfRemovedByRetention"/> skips it) into
    /// <see cref="JournalSegmentRemovedException"/> (with <see cref="JournalSegmentRemovedException.JournalOpen"/> from
    /// <paramref name="probe"/>). Only a not-found for a segment file of the directory counts, and only one the
    /// inspection's own reads raise: while <paramref name="visiting"/> says a dump's visitor is running, whatever it
    /// throws (its own <see cref="FileNotFoundException"/> included) goes to the caller as it is. A directory that is
    /// not there is still <see cref="DirectoryNotFoundException"/>.
    /// </summary>
    private static T Inspecting<T>(string directory, OpenProbe probe, Func<bool> visiting, Func<T> inspect)
    {
        try
        {
            return inspect();
        }
        catch (FileNotFoundException e) when (!visiting() && IsSegmentFileOf(directory, e.FileName))
        {
            throw new JournalSegmentRemovedException(e.FileName!, "after it was listed", e) { JournalOpen = probe.Now() };
        }
    }

    /// <summary>Whether <paramref name="path"/> names a segment file (<c>*.seg</c>) in <paramref name="directory"/>.</summary>
    private static bool IsSegmentFileOf(string directory, string? path)
    {
        if (path is null || !path.EndsWith(".seg", StringComparison.Ordinal))
        {
            return false;
        }

        var parent = Path.GetDirectoryName(Path.GetFullPath(path));
        return parent is not null && string.Equals(Path.TrimEndingDirectorySeparator(parent), Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory)), StringComparison.Ordinal);
    }
}
