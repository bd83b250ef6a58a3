namespace FastBroker.Journal;

/// <summary>What <see cref="JournalInspector.Verify"/> found in one segment file.</summary>
/// <param name="FilePath">The segment file.</param>
/// <param name="BaseOffset">Offset of its first record (from the file name).</param>
/// <param name="RecordCount">Records whose CRC checked out.</param>
/// <param name="Bytes">Bytes of those records, padding included.</param>
/// <param name="Sealed">Whether the segment carries a valid seal trailer.</param>
/// <param name="Problem">Null when intact; else what is wrong and where.</param>
public sealed record SegmentVerifyResult(string FilePath, long BaseOffset, int RecordCount, long Bytes, bool Sealed, string? Problem);
