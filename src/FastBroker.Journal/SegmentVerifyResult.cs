namespace FastBroker.Journal;

/// <summary>What <see cref="JournalInspector.Verify"/> found in one segment file.</summary>
/// <param name="FilePath">The segment file.</param>
/// <param name="BaseOffset">Offset of its first record (from the file name).</param>
/// <param name="RecordCount">Records whose CRC checked out, up to the first that does not (those of a file open removes included).</param>
/// <param name="Bytes">Bytes of those records, padding included.</param>
/// <param name="Sealed">Whether the segment carries a valid seal trailer.</param>
/// <param name="Problem">Null when intact; else what is wrong and where.</param>
public sealed record SegmentVerifyResult(string FilePath, long BaseOffset, int RecordCount, long Bytes, bool Sealed, string? Problem)
{
    /// <summary>
    /// Whether opening the journal removes this file (a blank last file, a lost tail, or a file after a torn or lost
    /// tail); it is then in <see cref="RecoveryReport.RemovedFiles"/> and its <see cref="RecordCount"/> records are
    /// reported dropped. False when the journal is corrupt: a plain open refuses it and removes nothing.
    /// </summary>
    public bool RemovedByOpen { get; init; }

    /// <summary>
    /// The records of this file that opening the journal reports dropped (<see cref="RecoveryReport.Dropped"/>): all of
    /// them when it removes the file, those from the cut when it cuts a torn tail here (not counted in
    /// <see cref="RecordCount"/>, which stops at the cut), else 0.
    /// </summary>
    public int DroppedRecordCount { get; init; }
}
