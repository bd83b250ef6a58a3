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

    /// <summary>Set by the broker: the record's headers carry <c>fb-expires</c> (its expiry time).</summary>
    HasExpiry = 0x0100,

    /// <summary>
    /// Set by the broker: the record's headers carry <c>fb-producer</c> (an idempotent producer's id and sequence), so
    /// recovery parses only these records' headers.
    /// </summary>
    HasProducer = 0x0200,
}
