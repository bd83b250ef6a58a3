namespace FastBroker.Journal.Internal;

/// <summary>
/// Offset → position and time → offset index of one segment: an entry for the first record at or after every
/// <c>interval</c> bytes. An entry's timestamp is the newest of the segment's records up to and including its own
/// (the record's own when they are in time order, as appends keep them; records a standby copied may not be), so
/// entries are sorted by offset, position and timestamp, both lookups are binary searches, and no record before an
/// entry older than a time is at or after it.
/// </summary>
/// <remarks>
/// One writer (the journal's append thread, or recovery) adds entries; any number of readers search. The entry
/// is stored before the count is published with a release write, and readers load the count (acquire) before
/// the array, so a reader never sees an entry that is not fully written.
/// </remarks>
internal sealed class SparseIndex
{
    private IndexEntry[] _entries;
    private int _count;

    internal SparseIndex(int capacity) => _entries = new IndexEntry[Math.Max(4, capacity)];

    internal SparseIndex(IndexEntry[] entries)
    {
        _entries = entries;
        _count = entries.Length;
    }

    internal int Count => Volatile.Read(ref _count);

    internal IndexEntry this[int i] => Volatile.Read(ref _entries)[i];

    internal void Add(int relativeOffset, int position, long timestamp)
    {
        var entries = _entries;
        var count = _count;
        if (count == entries.Length)
        {
            var bigger = new IndexEntry[entries.Length * 2];
            Array.Copy(entries, bigger, count);
            Volatile.Write(ref _entries, bigger);
            entries = bigger;
        }

        entries[count] = new IndexEntry(relativeOffset, position, timestamp);
        Volatile.Write(ref _count, count + 1);
    }

    /// <summary>Index of the last entry with a relative offset ≤ <paramref name="relativeOffset"/>, or -1.</summary>
    internal int FindByOffset(long relativeOffset)
    {
        var count = Count;
        var entries = Volatile.Read(ref _entries);
        int lo = 0, hi = count - 1, found = -1;
        while (lo <= hi)
        {
            var mid = (int)((uint)(lo + hi) >> 1);
            if (entries[mid].RelativeOffset <= relativeOffset)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return found;
    }

    /// <summary>
    /// Index of the last entry with a timestamp strictly before <paramref name="timestamp"/>, or -1: no record of the
    /// segment up to it is at or after the time, so a search for the first one scans on from there.
    /// </summary>
    internal int FindBeforeTimestamp(long timestamp)
    {
        var count = Count;
        var entries = Volatile.Read(ref _entries);
        int lo = 0, hi = count - 1, found = -1;
        while (lo <= hi)
        {
            var mid = (int)((uint)(lo + hi) >> 1);
            if (entries[mid].Timestamp < timestamp)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return found;
    }

    internal ReadOnlySpan<IndexEntry> Snapshot() => Volatile.Read(ref _entries).AsSpan(0, Count);
}
