namespace FastBroker.Replication.Internal;

/// <summary>
/// Which state files (<see cref="StateFiles"/>) a link's heartbeat check must read again: the sender thread's record of
/// each file's length and last write time when it last read it, and the files marked changed since (a commit drained
/// for a subscription marks its position file). A check reads a file that is marked, new, or whose length or time
/// differs; the others are left unread. Keys are relative, '/'-separated paths.
/// </summary>
internal sealed class StateScan
{
    private readonly Dictionary<string, (long Length, long Ticks)> _stamps = new(StringComparer.Ordinal);
    private readonly HashSet<string> _marked = new(StringComparer.Ordinal);
    private readonly HashSet<string> _listed = new(StringComparer.Ordinal);

    /// <summary>A stamp that matches no file: the next check reads it again.</summary>
    public static (long Length, long Ticks) Unknown => (-1, -1);

    /// <summary>The file at <paramref name="path"/>'s length and last write time; <see cref="Unknown"/> when it cannot be had.</summary>
    public static (long Length, long Ticks) StampOf(string path)
    {
        try
        {
            var info = new FileInfo(path);
            return info.Exists ? StampOf(info) : Unknown;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Unknown;
        }
    }

    /// <summary><paramref name="info"/>'s length and last write time.</summary>
    public static (long Length, long Ticks) StampOf(FileInfo info) => (info.Length, info.LastWriteTimeUtc.Ticks);

    /// <summary>True when this link has read <paramref name="relative"/> (and not seen it gone since).</summary>
    public bool Knows(string relative) => _stamps.ContainsKey(relative);

    /// <summary><paramref name="relative"/> may have changed (a commit stored into it): the next check reads it.</summary>
    public void Mark(string relative) => _marked.Add(relative);

    /// <summary>True when the next check must read <paramref name="relative"/>, whose stamp is now <paramref name="stamp"/>.</summary>
    public bool MustRead(string relative, (long Length, long Ticks) stamp) =>
        _marked.Contains(relative) || !_stamps.TryGetValue(relative, out var seen) || seen != stamp;

    /// <summary><paramref name="relative"/> was read (its stamp taken before the read): unmarked.</summary>
    public void Read(string relative, (long Length, long Ticks) stamp)
    {
        _stamps[relative] = stamp;
        _marked.Remove(relative);
    }

    /// <summary><paramref name="relative"/> is gone: forgotten, so that a file created under its name is read.</summary>
    public void Gone(string relative)
    {
        _stamps.Remove(relative);
        _marked.Remove(relative);
    }

    /// <summary>A check's listing begins: <see cref="Listed"/> each file, then <see cref="EndListing"/>.</summary>
    public void BeginListing() => _listed.Clear();

    /// <summary><paramref name="relative"/> is among the files the check listed.</summary>
    public void Listed(string relative) => _listed.Add(relative);

    /// <summary>The check's listing is over: the files it did not list are gone (a removed subscription, say).</summary>
    public void EndListing()
    {
        foreach (var key in _stamps.Keys.Where(k => !_listed.Contains(k)).ToList())
        {
            Gone(key);
        }

        _marked.IntersectWith(_listed);
    }
}
