namespace FastBroker.Journal;

/// <summary>
/// <see cref="JournalInspector.Dump(string, long?, long?, long, JournalInspector.RecordVisitor, out string?)"/> or
/// <see cref="JournalInspector.Verify"/> listed a segment file that was gone when it came to read it, and not as
/// retention of an open journal removes segments (the oldest first, while a process has the journal open): older
/// segment files remain, or no process has the journal open. The files changed under the inspection; run it again.
/// </summary>
public sealed class JournalSegmentRemovedException : JournalException
{
    /// <summary>Creates the exception for the segment file that was removed.</summary>
    public JournalSegmentRemovedException(string segmentPath, string reason, Exception? inner = null)
        : base(JournalErrorCode.IoError, $"{Path.GetFileName(segmentPath)}: the segment file was removed while the journal was being read, {reason}: the journal changed under the inspection; run it again", inner)
    {
        SegmentPath = segmentPath;
    }

    /// <summary>The segment file that was listed and then gone.</summary>
    public string SegmentPath { get; }

    /// <summary>
    /// Whether a process had the journal open (<see cref="JournalInspector.IsOpen"/>) when the file was found gone, as
    /// <see cref="JournalVerifyReport.JournalOpen"/> and the journalOpen of
    /// <see cref="JournalInspector.Dump(string, long?, long?, long, JournalInspector.RecordVisitor, out string?, out bool)"/>
    /// say it when the inspection ends: its end, and its oldest segments, may move while it is read.
    /// </summary>
    public bool JournalOpen { get; init; }
}
