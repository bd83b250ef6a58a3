namespace FastBroker.Journal;

/// <summary>
/// A damaged record or header where a crash cannot explain it (a sealed segment, or a segment followed by a
/// sealed one): the journal refuses to open rather than skip data, and a <see cref="JournalReader"/> that meets a
/// damaged record (bytes changed on disk after the open checked them, or in a sealed segment the open trusted) throws
/// it rather than return the record. <see cref="FilePath"/> and
/// <see cref="Position"/> say where; <see cref="JournalOptions.RepairCorruption"/> truncates there instead.
/// </summary>
public sealed class JournalCorruptionException : JournalException
{
    /// <summary>Creates the exception.</summary>
    public JournalCorruptionException(string filePath, long position, long expectedOffset, string reason)
        : base(JournalErrorCode.Corruption, $"Journal corrupt: {reason} in '{filePath}' at byte position {position} (expected offset {expectedOffset}). Refusing to open; set JournalOptions.RepairCorruption to truncate the journal there.")
    {
        FilePath = filePath;
        Position = position;
        ExpectedOffset = expectedOffset;
        ResumeOffset = expectedOffset + 1;
        Reason = reason;
    }

    /// <summary>
    /// Creates the exception for a bad record in the input of <see cref="JournalLog.TryAppendRecords"/> (no file:
    /// <see cref="FilePath"/> is empty and <see cref="Position"/> is the byte position in the input).
    /// </summary>
    internal JournalCorruptionException(long position, long expectedOffset, string reason, string message)
        : base(JournalErrorCode.Corruption, message)
    {
        FilePath = string.Empty;
        Position = position;
        ExpectedOffset = expectedOffset;
        ResumeOffset = expectedOffset + 1;
        Reason = reason;
    }

    /// <summary>Creates the exception for a damaged run of records a <see cref="JournalReader"/> met in a segment file.</summary>
    internal JournalCorruptionException(string filePath, long position, long expectedOffset, long resumeOffset, string reason, string message)
        : base(JournalErrorCode.Corruption, message)
    {
        FilePath = filePath;
        Position = position;
        ExpectedOffset = expectedOffset;
        ResumeOffset = resumeOffset;
        Reason = reason;
    }

    /// <summary>The segment file (empty for a bad record handed to <see cref="JournalLog.TryAppendRecords"/>).</summary>
    public string FilePath { get; }

    /// <summary>Byte position of the bad record (or header) in the file (or in the replicated input).</summary>
    public long Position { get; }

    /// <summary>The offset the record at <see cref="Position"/> should have had.</summary>
    public long ExpectedOffset { get; }

    /// <summary>
    /// Where the damage met ends: for a <see cref="JournalReader"/>'s, the offset of the first record after
    /// <see cref="ExpectedOffset"/> in its segment whose length, offset and CRC32C check, or the end of the segment's
    /// durable records when none does (the next segment's first offset, or where the last segment's next record will
    /// go). Every offset from <see cref="ExpectedOffset"/> up to it is unreadable; a reader opened at it goes on with the
    /// records that read. The reader learns the run in one pass over it (once per damaged place, not per read or per
    /// offset). <see cref="ExpectedOffset"/> + 1 for an exception of an open, a repair or a replicated append.
    /// </summary>
    public long ResumeOffset { get; }

    /// <summary>What check failed ("CRC32C mismatch", "bad record length", …).</summary>
    public string Reason { get; }
}
