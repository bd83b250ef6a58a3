namespace FastBroker.Journal;

/// <summary>Why a journal operation failed (carried by <see cref="JournalException"/>).</summary>
public enum JournalErrorCode
{
    /// <summary>An I/O call failed (the message has the errno text).</summary>
    IoError = 1,

    /// <summary>No space (or quota) left for a new segment; the append was refused and nothing was written.</summary>
    DiskFull = 2,

    /// <summary>A record or segment header failed validation where a torn write is impossible.</summary>
    Corruption = 3,

    /// <summary>The record does not fit in a segment (or the key is longer than 65535 bytes).</summary>
    RecordTooLarge = 4,

    /// <summary>An earlier flush failed; the journal no longer accepts appends.</summary>
    Faulted = 5,

    /// <summary>The directory is not a journal this version can read (bad magic or unknown format version).</summary>
    UnsupportedFormat = 6,

    /// <summary>
    /// Replicated records (<see cref="JournalLog.TryAppendRecords"/>) do not start at the journal's next offset:
    /// the standby and its primary disagree on where the copy stands; nothing was written.
    /// </summary>
    OffsetMismatch = 7,
}
