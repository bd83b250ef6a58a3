namespace FastBroker.Journal;

/// <summary>The result of <see cref="JournalInspector.Verify"/>: every record's CRC checked, segment by segment.</summary>
public sealed class JournalVerifyReport
{
    internal JournalVerifyReport(List<SegmentVerifyResult> segments, bool corrupt, bool damagedTail, string? pendingRepair, List<string> removedFiles, long droppedRecordCount)
    {
        RemovedFiles = removedFiles;
        DroppedRecordCount = droppedRecordCount;
        Segments = segments;
        IsCorrupt = corrupt;
        HasDamagedTail = damagedTail;
        PendingRepair = pendingRepair;
    }

    /// <summary>
    /// Null, or what the journal directory's repair log says: a repair an interrupted open left unfinished, which the next
    /// open finishes and reports (<see cref="Segments"/> are judged as its steps leave them: the files it deletes left
    /// out, the segment it cuts ending at the cut), or that the log is damaged, which open refuses (<see cref="IsCorrupt"/>).
    /// </summary>
    public string? PendingRepair { get; }

    /// <summary>One entry per segment file, in offset order.</summary>
    public IReadOnlyList<SegmentVerifyResult> Segments { get; }

    /// <summary>Intact records found, those open drops with the files it removes included (<see cref="DroppedRecordCount"/>).</summary>
    public long RecordCount => Segments.Sum(s => (long)s.RecordCount);

    /// <summary>Bytes of intact records.</summary>
    public long Bytes => Segments.Sum(s => s.Bytes);

    /// <summary>
    /// The records opening the journal reports dropped (<see cref="RecoveryReport.DroppedRecordCount"/>): a pending
    /// repair's, a torn tail's from its cut, and every record of the files it removes. 0 when <see cref="IsCorrupt"/>:
    /// a plain open refuses the journal and drops nothing.
    /// </summary>
    public long DroppedRecordCount { get; }

    /// <summary>
    /// The files opening the journal reports removed (<see cref="RecoveryReport.RemovedFiles"/>), in the same order: a
    /// pending repair's, then the files from a lost tail, or after a torn one, on. Empty when <see cref="IsCorrupt"/>.
    /// </summary>
    public IReadOnlyList<string> RemovedFiles { get; }

    /// <summary>
    /// Damage that opening the journal would refuse: in a sealed segment, followed by sealed data, a bad segment header
    /// (other than a blank last file), a header whose base offset is not the file name, or a gap after a sealed segment.
    /// </summary>
    public bool IsCorrupt { get; }

    /// <summary>
    /// Damage in the unsealed tail only (a torn or lost tail, a blank last file), or an unfinished repair
    /// (<see cref="PendingRepair"/>): opening the journal truncates it and reports what was dropped.
    /// </summary>
    public bool HasDamagedTail { get; }

    /// <summary>
    /// Whether a process had the journal open (<see cref="JournalInspector.IsOpen"/>): the end of its last segment moves
    /// as it appends, and a record being written there (or a last segment file being created) was taken as the end, not
    /// as a damaged tail; damage before it is still reported.
    /// </summary>
    public bool JournalOpen { get; init; }

    /// <summary>
    /// The segment files that were listed and then gone before they were read, at the oldest end of a journal a process
    /// has open: retention removed them. They are not in <see cref="Segments"/>; the journal starts after them now.
    /// </summary>
    public IReadOnlyList<string> RemovedWhileReading { get; init; } = [];

    /// <summary>0 intact, 1 corrupt, 2 damaged tail only.</summary>
    public int ExitCode => IsCorrupt ? 1 : HasDamagedTail ? 2 : 0;
}
