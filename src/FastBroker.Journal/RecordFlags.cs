namespace FastBroker.Journal;

/// <summary>Per-record flag bits (a 16-bit field in the record header; unknown bits are preserved, not rejected).</summary>
[Flags]
public enum RecordFlags : ushort
{
    /// <summary>An ordinary record.</summary>
    None = 0,

    /// <summary>A deletion marker for its key (compaction keeps the latest record per key, then drops tombstones).</summary>
    Tombstone = 1,

    /// <summary>A record written by the broker itself (epoch change, transaction marker), not by a producer.</summary>
    Control = 2,
}
