namespace FastBroker.Journal;

/// <summary>Bytes recovery removed from a segment file (a torn tail, or everything after a repaired corruption).</summary>
/// <param name="FilePath">The segment file.</param>
/// <param name="StartPosition">First dropped byte.</param>
/// <param name="EndPosition">One past the last dropped non-zero byte (for a removed file: its length).</param>
/// <param name="FirstOffset">The offset the first dropped record would have had.</param>
/// <param name="RecordCount">Records (whole or partial) that started in the range.</param>
/// <param name="Reason">Why it was dropped.</param>
public sealed record DroppedRange(string FilePath, long StartPosition, long EndPosition, long FirstOffset, int RecordCount, string Reason)
{
    /// <summary>Bytes in the range.</summary>
    public long Length => EndPosition - StartPosition;

    /// <inheritdoc />
    public override string ToString() =>
        $"{Path.GetFileName(FilePath)} bytes [{StartPosition}, {EndPosition}) from offset {FirstOffset}: {RecordCount} record(s), {Reason}";
}
