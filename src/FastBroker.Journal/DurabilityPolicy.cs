namespace FastBroker.Journal;

/// <summary>When appended records count as durable (and become visible to readers).</summary>
public enum DurabilityPolicy
{
    /// <summary>
    /// Durable once in the OS page cache, at <see cref="JournalLog.Commit"/>: survives a process crash
    /// (<c>kill -9</c>), not a power loss. No sync calls on any thread except when a segment is sealed.
    /// </summary>
    None = 0,

    /// <summary>The flusher thread syncs every <see cref="JournalOptions.FlushInterval"/>; durable after that sync.</summary>
    Interval = 1,

    /// <summary>
    /// Group commit: <see cref="JournalLog.Commit"/> (or any waiter) wakes the flusher, whose one
    /// <c>msync(MS_SYNC)</c> covers every record appended up to that moment; all its waiters complete together.
    /// </summary>
    GroupCommit = 2,
}
