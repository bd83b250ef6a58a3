using System.Diagnostics;
using FastBroker.Engine;

namespace FastBroker.Replication.Internal;

/// <summary>
/// Which state files (<see cref="StateFiles"/>) a link's heartbeat check must read again, asking the file system about
/// a fixed few paths, not about each file: the files marked changed since they were read (a commit drained for a
/// subscription marks its position file; a group's changes are read by the group-state sends), the producers' two
/// files when their length or last write time changed, and new position files, found by listing the names in
/// <c>subscriptions/</c> only when that directory's last write time moved (and once more 2 s after a listing that time
/// was too close to, <see cref="s_racyListing"/>). A change nothing signals (a file written
/// behind the broker's back) is found by the rolling pass: every state file is read once per sweep, a slice of them
/// at each heartbeat (<see cref="Plan"/>). A file this link read that a listing no longer finds, or a read finds gone,
/// is held for <see cref="TakeGone"/> (the link tells the standby to remove its copy). Keys are relative,
/// '/'-separated paths. Sender thread only.
/// </summary>
internal sealed class StateScan(string dataDirectory)
{
    private const string Subscriptions = "subscriptions";

    /// <summary>
    /// A directory's last write time this close to its listing may not move for an entry added just after it (file
    /// systems stamp from a coarse clock; some keep whole or even seconds): it is listed once more this long after that
    /// listing (not at each check meanwhile: a listing allocates), when its time is older than this.
    /// </summary>
    private static readonly TimeSpan s_racyListing = TimeSpan.FromSeconds(2);

    private static readonly string[] s_producerFiles = [ProducerCheckpoint.FileName, ProducerEpochFile.FileName];

    private readonly HashSet<string> _known = new(StringComparer.Ordinal); // read by this link and not seen gone since
    private readonly HashSet<string> _marked = new(StringComparer.Ordinal);
    private readonly HashSet<string> _gone = new(StringComparer.Ordinal); // found gone, not yet taken (TakeGone)
    private readonly Dictionary<string, (long Length, long Ticks)> _producerStamps = new(StringComparer.Ordinal);
    private readonly List<string> _sweep = [];
    private int _sweepNext;
    private int _slice;
    private long _sweepStarted = Stopwatch.GetTimestamp();
    private long _subscriptionsListed = long.MinValue; // that directory's last write time when listed (MinValue: none)
    private long _subscriptionsRelistAt; // Stopwatch time to list it again though its time did not move (0: none due)

    // Each check's stats, refreshed in place (FileSystemInfo.Refresh): a new FileInfo and its path per stat allocated
    // ~1.2 KB per heartbeat on an idle link.
    private readonly FileInfo[] _producerInfos = [.. s_producerFiles.Select(name => new FileInfo(Path.Combine(dataDirectory, name)))];
    private readonly DirectoryInfo _subscriptionsInfo = new(Path.Combine(dataDirectory, Subscriptions));

    /// <summary>A stamp that matches no file.</summary>
    public static (long Length, long Ticks) Unknown => (-1, -1);

    /// <summary>Paths whose metadata this scan asked the file system for (a <c>stat</c> each) since <see cref="TakeStats"/>.</summary>
    public int Stats { get; private set; }

    /// <summary>How many files the sweep under way reads per heartbeat.</summary>
    public int Slice => _slice;

    /// <summary>Directories this scan listed (an enumeration each, which allocates) since <see cref="TakeListings"/>.</summary>
    public int Listings { get; private set; }

    /// <summary><see cref="Stats"/>, then zero.</summary>
    public int TakeStats()
    {
        var n = Stats;
        Stats = 0;
        return n;
    }

    /// <summary><see cref="Listings"/>, then zero.</summary>
    public int TakeListings()
    {
        var n = Listings;
        Listings = 0;
        return n;
    }

    /// <summary>True when this link has read <paramref name="relative"/> (and not seen it gone since).</summary>
    public bool Knows(string relative) => _known.Contains(relative);

    /// <summary><paramref name="relative"/> may have changed (a commit stored into it): the next check reads it.</summary>
    public void Mark(string relative) => _marked.Add(relative);

    /// <summary>True for the producers' files, whose stamp (length, last write time) each check compares.</summary>
    public static bool IsStamped(string relative) => relative is ProducerCheckpoint.FileName or ProducerEpochFile.FileName;

    /// <summary>The file at <paramref name="path"/>'s length and last write time (one <c>stat</c>); <see cref="Unknown"/> when it cannot be had.</summary>
    public (long Length, long Ticks) StampOf(string path) => StampOf(new FileInfo(path));

    /// <summary>
    /// <paramref name="info"/>'s file's length and last write time, stat'ed again (<see cref="FileSystemInfo.Refresh"/>,
    /// which allocates nothing); <see cref="Unknown"/> when it cannot be had.
    /// </summary>
    private (long Length, long Ticks) StampOf(FileInfo info)
    {
        Stats++;
        try
        {
            info.Refresh();
            return info.Exists ? (info.Length, info.LastWriteTimeUtc.Ticks) : Unknown;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Unknown;
        }
    }

    /// <summary><paramref name="relative"/> was read (<paramref name="stamp"/>, for a producers' file, taken before the read): unmarked.</summary>
    public void Read(string relative, (long Length, long Ticks)? stamp)
    {
        _known.Add(relative);
        _marked.Remove(relative);
        if (stamp is { } s && IsStamped(relative))
        {
            _producerStamps[relative] = s;
        }
    }

    /// <summary>
    /// <paramref name="relative"/> is gone (or could not be read): forgotten, so that a file created under its name is
    /// read, and held for <see cref="TakeGone"/>, whose caller tells the standby if the file is gone indeed.
    /// </summary>
    public void Gone(string relative)
    {
        _known.Remove(relative);
        _marked.Remove(relative);
        _producerStamps.Remove(relative);
        _gone.Add(relative);
    }

    /// <summary>Adds to <paramref name="into"/> the files found gone (<see cref="Gone"/>) since the last call, and forgets them.</summary>
    public void TakeGone(List<string> into)
    {
        into.AddRange(_gone);
        _gone.Clear();
    }

    /// <summary>
    /// Every state file's relative path, by listing names (no <c>stat</c> of a file; one of each directory looked for),
    /// forgetting the files this link knew or marked that are gone (held for <see cref="TakeGone"/>). The <c>subscriptions/</c> listing it holds is then this one.
    /// </summary>
    public List<string> ListAll()
    {
        var subscriptionsTicks = SubscriptionsTicks();
        var listedAt = DateTime.UtcNow.Ticks;
        var all = new List<string>();
        foreach (var name in s_producerFiles)
        {
            Stats++;
            if (File.Exists(Path.Combine(dataDirectory, name)))
            {
                all.Add(name);
            }
        }

        if (subscriptionsTicks != long.MinValue)
        {
            ListSubscriptions(all);
        }

        var topics = Path.Combine(dataDirectory, "topics");
        Stats++;
        if (Directory.Exists(topics))
        {
            Listings++;
            foreach (var t in Directory.EnumerateDirectories(topics))
            {
                var groups = Path.Combine(t, "groups");
                Stats++;
                if (Directory.Exists(groups))
                {
                    Listings++;
                    var prefix = "topics/" + Path.GetFileName(t) + "/groups/";
                    foreach (var f in Directory.EnumerateFiles(groups, "*.state"))
                    {
                        all.Add(prefix + Path.GetFileName(f));
                    }
                }
            }
        }

        var listed = new HashSet<string>(all, StringComparer.Ordinal);
        foreach (var key in _known.Concat(_marked).Where(k => !listed.Contains(k)).Distinct(StringComparer.Ordinal).ToList())
        {
            Gone(key); // a marked one too: the commits shipped for it made the standby a copy
        }

        SubscriptionsListed(subscriptionsTicks, listedAt);
        return all;
    }

    /// <summary>
    /// The attach or a hand-over's request read every file of <see cref="ListAll"/>'s listing: a sweep ends now (the
    /// next begins half a period later).
    /// </summary>
    public void AllRead()
    {
        _sweep.Clear();
        _sweepNext = 0;
        _sweepStarted = Stopwatch.GetTimestamp();
    }

    /// <summary>
    /// Adds to <paramref name="due"/> the files a heartbeat's check reads besides the sweep's: the marked ones, the
    /// producers' files whose stamp changed, and the position files new since the last listing of <c>subscriptions/</c>
    /// (listed again only when its last write time moved): three <c>stat</c>s, and nothing allocated when none of
    /// these changed.
    /// </summary>
    public void AddChanged(List<string> due)
    {
        due.AddRange(_marked);
        for (var i = 0; i < s_producerFiles.Length; i++)
        {
            var name = s_producerFiles[i];
            var stamp = StampOf(_producerInfos[i]);
            if (stamp == Unknown)
            {
                if (_known.Contains(name))
                {
                    due.Add(name); // gone: its read says so
                }
            }
            else if (!_producerStamps.TryGetValue(name, out var seen) || seen != stamp || !_known.Contains(name))
            {
                due.Add(name);
            }
        }

        AddNewSubscriptions(due);
    }

    /// <summary>
    /// Adds to <paramref name="due"/> the position files this link never read, listing <c>subscriptions/</c> only when
    /// its last write time moved since the last listing (one <c>stat</c>), or once <see cref="s_racyListing"/> after a
    /// listing that time was too close to; forgets those gone from it.
    /// </summary>
    public void AddNewSubscriptions(List<string> due)
    {
        var ticks = SubscriptionsTicks();
        if (ticks == _subscriptionsListed && (_subscriptionsRelistAt == 0 || Stopwatch.GetTimestamp() < _subscriptionsRelistAt))
        {
            return;
        }

        ListNewSubscriptions(due, ticks);
    }

    /// <summary>
    /// <see cref="AddNewSubscriptions"/>'s listing, of <c>subscriptions/</c> whose last write time is
    /// <paramref name="ticks"/>. A method of its own: the closure of its lambda is allocated on entry to the scope of
    /// what it captures, which in <see cref="AddNewSubscriptions"/> was every check (32 B per heartbeat).
    /// </summary>
    private void ListNewSubscriptions(List<string> due, long ticks)
    {
        var listedAt = DateTime.UtcNow.Ticks;
        var listed = new List<string>();
        if (ticks != long.MinValue)
        {
            ListSubscriptions(listed);
        }

        var names = new HashSet<string>(listed, StringComparer.Ordinal);
        foreach (var key in _known.Where(k => k.StartsWith(Subscriptions + "/", StringComparison.Ordinal) && !names.Contains(k)).ToList())
        {
            Gone(key);
        }

        foreach (var key in listed)
        {
            if (!_known.Contains(key))
            {
                due.Add(key);
            }
        }

        SubscriptionsListed(ticks, listedAt);
    }

    /// <summary>
    /// Adds to <paramref name="due"/> the rolling pass's slice for this heartbeat, and returns how many: once a sweep has
    /// read every file and half of <paramref name="period"/> has passed since it began, the next lists the state files
    /// (<see cref="ListAll"/>) and reads them in slices of ceil(files / heartbeats in half a period), so that it ends
    /// within half a period and each file is read at least once per period while the heartbeats keep their interval.
    /// </summary>
    public int Plan(List<string> due, TimeSpan heartbeat, TimeSpan period)
    {
        if (_sweepNext >= _sweep.Count)
        {
            var half = period / 2;
            if (Stopwatch.GetElapsedTime(_sweepStarted) < half)
            {
                return 0;
            }

            _sweep.Clear();
            _sweep.AddRange(ListAll());
            _sweepNext = 0;
            _sweepStarted = Stopwatch.GetTimestamp();
            var beats = Math.Max(1, (long)(half / heartbeat));
            _slice = (int)((_sweep.Count + beats - 1) / beats);
        }

        var n = Math.Min(_slice, _sweep.Count - _sweepNext);
        for (var i = 0; i < n; i++)
        {
            due.Add(_sweep[_sweepNext++]);
        }

        return n;
    }

    private void ListSubscriptions(List<string> into)
    {
        Listings++;
        try
        {
            foreach (var f in Directory.EnumerateFiles(Path.Combine(dataDirectory, Subscriptions), "*.pos"))
            {
                into.Add(Subscriptions + "/" + Path.GetFileName(f));
            }
        }
        catch (DirectoryNotFoundException)
        {
            // Removed since its stat: no position file.
        }
    }

    /// <summary>The last write time of <c>subscriptions/</c> (one <c>stat</c>, allocating nothing); <see cref="long.MinValue"/> when there is none.</summary>
    private long SubscriptionsTicks()
    {
        Stats++;
        try
        {
            var info = _subscriptionsInfo;
            info.Refresh();
            return info.Exists ? info.LastWriteTimeUtc.Ticks : long.MinValue;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return long.MinValue;
        }
    }

    /// <summary>
    /// <c>subscriptions/</c> was listed at <paramref name="listedAt"/> (UTC ticks) with last write time
    /// <paramref name="ticks"/>: the next check lists it again when that time moves, and, when it was too close to the
    /// listing to be sure that no entry added after it shares it (<see cref="s_racyListing"/>), once
    /// <see cref="s_racyListing"/> later as well: an entry added after this listing has a later time by then. That
    /// listing, its time older than the window, is trusted; a time still within it (a clock stepped back) is listed
    /// again a window later, never at each check.
    /// </summary>
    private void SubscriptionsListed(long ticks, long listedAt)
    {
        _subscriptionsListed = ticks;
        _subscriptionsRelistAt = ticks == long.MinValue || listedAt - ticks > s_racyListing.Ticks
            ? 0
            : Stopwatch.GetTimestamp() + (long)(s_racyListing.TotalSeconds * Stopwatch.Frequency);
    }
}
