namespace FastBroker.Journal;

/// <summary>
/// No space for a new segment: <c>posix_fallocate</c> failed with ENOSPC/EDQUOT/EFBIG. The append that needed
/// the segment was refused (nothing written, nothing acknowledged); the journal stays open and readable, and
/// appends succeed again once space is freed (e.g. by retention).
/// </summary>
public sealed class JournalFullException : JournalException
{
    /// <summary>Creates the exception for the segment file that could not be allocated.</summary>
    public JournalFullException(string segmentPath, long bytesRequested, string reason)
        : base(JournalErrorCode.DiskFull, $"Journal disk full: cannot allocate {bytesRequested} bytes for segment '{segmentPath}': {reason}. The append was refused.")
    {
        SegmentPath = segmentPath;
        BytesRequested = bytesRequested;
    }

    /// <summary>The segment file that could not be created.</summary>
    public string SegmentPath { get; }

    /// <summary>How many bytes the segment needed.</summary>
    public long BytesRequested { get; }
}
