using FastBroker.Journal.Internal;

namespace FastBroker.Journal;

/// <summary>Keeping aside once: what a process killed between a keep and its cut leaves is found again, not kept twice.</summary>
public static partial class DamagedSegments
{
    /// <summary>The suffix of a kept directory being built (<see cref="KeepAside"/>).</summary>
    internal const string PartialSuffix = ".partial";

    /// <summary>
    /// <see cref="KeepAside"/> into <see cref="DirectoryFor"/>(<paramref name="root"/>,
    /// <paramref name="label"/>, <paramref name="time"/>), unless a directory of <paramref name="label"/> under
    /// <paramref name="root"/> already holds exactly the files it would keep, byte for byte (each the same file, or the
    /// same bytes): a process killed after a keep and before its cut's repair log was durable finds the same damage at
    /// its next open, and that directory is then returned (<see cref="KeptSegments.KeptBefore"/>) instead of a second
    /// copy. A <c>.partial</c> directory of the label (a keep killed part-way) is removed first. Once the repair log is
    /// durable the next open finishes the cut without asking, so the sequence "keep once, then open with
    /// <see cref="JournalOptions.RepairCorruption"/>" leaves, wherever it is killed, one kept copy and a journal
    /// before or after the cut. Comparing reads the damaged segment (and any file that is not a link) on both sides.
    /// </summary>
    /// <exception cref="IOException">As <see cref="KeepAside"/>, or a directory could not be read or removed.</exception>
    /// <exception cref="JournalException"><see cref="JournalErrorCode.IoError"/>: a directory could not be synced.</exception>
    public static KeptSegments KeepAsideOnce(string journalDirectory, string damagedSegment, string root, string label, DateTimeOffset time) =>
        KeepAsideOnceWithSteps(journalDirectory, damagedSegment, root, label, time, null);

    /// <summary><see cref="KeepAsideOnce"/> with the test seam of <see cref="KeepAsideWithSteps"/>.</summary>
    internal static KeptSegments KeepAsideOnceWithSteps(string journalDirectory, string damagedSegment, string root, string label, DateTimeOffset time, Action<string>? step)
    {
        root = Path.GetFullPath(root);
        if (Directory.Exists(root))
        {
            var removed = false;
            var earlier = new List<string>();
            foreach (var dir in Directory.GetDirectories(root))
            {
                if (!IsKeptName(Path.GetFileName(dir), label, out var partial))
                {
                    continue;
                }

                if (partial)
                {
                    Directory.Delete(dir, recursive: true);
                    removed = true;
                }
                else
                {
                    earlier.Add(dir);
                }
            }

            if (removed)
            {
                Native.SyncDirectory(root);
            }

            earlier.Sort(StringComparer.Ordinal);
            for (var i = earlier.Count - 1; i >= 0; i--)
            {
                if (Holds(earlier[i], journalDirectory, damagedSegment) is { } files)
                {
                    return new KeptSegments(earlier[i], files, KeptBefore: true);
                }
            }
        }

        var destination = DirectoryFor(root, label, time);
        return new KeptSegments(destination, KeepAsideWithSteps(journalDirectory, damagedSegment, destination, step), KeptBefore: false);
    }

    /// <summary>
    /// A name <see cref="DirectoryFor"/> gives for <paramref name="label"/> (<c>&lt;label&gt;-yyyyMMddTHHmmssZ</c>, then
    /// <c>-&lt;n&gt;</c> or not), with <see cref="PartialSuffix"/> (<paramref name="partial"/>) or not. Exact, so that
    /// topic <c>a</c> never takes topic <c>a-b</c>'s directories.
    /// </summary>
    private static bool IsKeptName(string name, string label, out bool partial)
    {
        partial = name.EndsWith(PartialSuffix, StringComparison.Ordinal);
        var stem = partial ? name.AsSpan(0, name.Length - PartialSuffix.Length) : name.AsSpan();
        if (!stem.StartsWith(label, StringComparison.Ordinal) || stem.Length < label.Length + 17 || stem[label.Length] != '-')
        {
            return false;
        }

        var stamp = stem.Slice(label.Length + 1, 16);
        for (var i = 0; i < stamp.Length; i++)
        {
            var ok = i switch
            {
                8 => stamp[i] == 'T',
                15 => stamp[i] == 'Z',
                _ => char.IsAsciiDigit(stamp[i]),
            };
            if (!ok)
            {
                return false;
            }
        }

        var rest = stem[(label.Length + 17)..];
        if (rest.IsEmpty)
        {
            return true;
        }

        if (rest.Length < 2 || rest[0] != '-')
        {
            return false;
        }

        foreach (var c in rest[1..])
        {
            if (!char.IsAsciiDigit(c))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The names of the files of <paramref name="kept"/>, when they are exactly those a keep would put there now; else null.</summary>
    private static List<string>? Holds(string kept, string journalDirectory, string damagedSegment)
    {
        var files = FilesFrom(journalDirectory, damagedSegment).Select(f => f.File).ToList();
        var names = files.Select(f => Path.GetFileName(f)!).ToList();
        var there = Directory.GetFiles(kept).Select(f => Path.GetFileName(f)!).Order(StringComparer.Ordinal);
        if (files.Count == 0 || !there.SequenceEqual(names.Order(StringComparer.Ordinal), StringComparer.Ordinal))
        {
            return null;
        }

        foreach (var file in files)
        {
            if (!Same(file, Path.Combine(kept, Path.GetFileName(file))))
            {
                return null;
            }
        }

        return names;
    }

    /// <summary>The same file (a link: one inode), or two files of the same bytes.</summary>
    private static bool Same(string a, string b)
    {
        if (Native.TryGetFileId(a, out var idA, out _) && Native.TryGetFileId(b, out var idB, out _) && idA == idB)
        {
            return true;
        }

        using var x = new FileStream(a, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1);
        using var y = new FileStream(b, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1);
        if (x.Length != y.Length)
        {
            return false;
        }

        var bufferA = new byte[1 << 20]; // 1 MiB: a 64 MiB segment in 64 reads a side
        var bufferB = new byte[1 << 20];
        while (true)
        {
            var n = x.ReadAtLeast(bufferA, bufferA.Length, throwOnEndOfStream: false);
            var m = y.ReadAtLeast(bufferB.AsSpan(0, n), n, throwOnEndOfStream: false);
            if (n != m || !bufferA.AsSpan(0, n).SequenceEqual(bufferB.AsSpan(0, m)))
            {
                return false;
            }

            if (n < bufferA.Length)
            {
                return true;
            }
        }
    }
}
