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
        Reason = reason;
    }

    /// <summary>Creates the exception for a damaged record a <see cref="JournalReader"/> met in a segment file.</summary>
    internal JournalCorruptionException(string filePath, long position, long expectedOffset, string reason, string message)
        : base(JournalErrorCode.Corruption, message)
    {
        FilePath = filePath;
        Position = position;
        ExpectedOffset = expectedOffset;
        Reason = reason;
    }

    /// <summary>The segment file (empty for a bad record handed to <see cref="JournalLog.TryAppendRecords"/>).</summary>
    public string FilePath { get; }

    /// <summary>Byte position of the bad record (or header) in the file (or in the replicated input).</summary>
    public long Position { get; }

    /// <summary>The offset the record at <see cref="Position"/> should have had.</summary>
    public long ExpectedOffset { get; }

    /// <summary>What check failed ("CRC32C mismatch", "bad record length", …).</summary>
    public string Reason { get; }
}
