using System.Text;

namespace FastBroker.Journal;

/// <summary>What opening a journal found and changed: always available as <see cref="JournalLog.Recovery"/>.</summary>
public sealed class RecoveryReport
{
    private readonly List<DroppedRange> _dropped = [];
    private readonly List<string> _removedFiles = [];

    /// <summary>Segment files found.</summary>
    public int SegmentCount { get; internal set; }

    /// <summary>Segments whose every record CRC was checked.</summary>
    public int SegmentsVerified { get; internal set; }

    /// <summary>Sparse indexes rebuilt because their file was missing or damaged.</summary>
    public int IndexesRebuilt { get; internal set; }

    /// <summary>
    /// Sealed segments an open with <see cref="JournalOptions.VerifySealedSegmentsOnOpen"/> off scanned (lengths, offsets
    /// and timestamps, no CRC32C) although their index file was usable, because an older version wrote their seal: its
    /// last timestamp may understate the segment's newest record (docs/journal-format.md, "Timestamps out of order").
    /// </summary>
    public int OlderSealsScanned { get; internal set; }

    /// <summary>Oldest retained offset.</summary>
    public long FirstOffset { get; internal set; }

    /// <summary>Offset the next append gets.</summary>
    public long NextOffset { get; internal set; }

    /// <summary>Byte ranges dropped (torn tail, repaired corruption), in file order.</summary>
    public IReadOnlyList<DroppedRange> Dropped => _dropped;

    /// <summary>Whole files removed (an interrupted segment creation, segments after a truncation point).</summary>
    public IReadOnlyList<string> RemovedFiles => _removedFiles;

    /// <summary>Total records dropped.</summary>
    public long DroppedRecordCount => _dropped.Sum(d => (long)d.RecordCount);

    /// <summary>
    /// True when an earlier open's repair was interrupted (a crash after its repair log was written) and this open
    /// finished it: its dropped ranges and removed files are reported here, before this open's own.
    /// </summary>
    public bool FinishedInterruptedRepair { get; internal set; }

    /// <summary>True when nothing was dropped or removed.</summary>
    public bool IsClean => _dropped.Count == 0 && _removedFiles.Count == 0;

    internal void AddDropped(DroppedRange range) => _dropped.Add(range);

    internal void AddRemovedFile(string path) => _removedFiles.Add(path);

    /// <inheritdoc />
    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.Append($"{SegmentCount} segment(s), {SegmentsVerified} verified, offsets [{FirstOffset}, {NextOffset}), {IndexesRebuilt} index(es) rebuilt");
        if (OlderSealsScanned > 0)
        {
            sb.Append($", {OlderSealsScanned} segment(s) sealed by an older version scanned for their timestamps");
        }

        if (FinishedInterruptedRepair)
        {
            sb.Append("; finished a repair an earlier open left in repair.log");
        }

        foreach (var d in _dropped)
        {
            sb.Append("; dropped ").Append(d);
        }

        foreach (var f in _removedFiles)
        {
            sb.Append("; removed ").Append(Path.GetFileName(f));
        }

        return sb.ToString();
    }
}
