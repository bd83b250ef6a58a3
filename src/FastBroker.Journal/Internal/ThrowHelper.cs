using System.Diagnostics.CodeAnalysis;

namespace FastBroker.Journal.Internal;

/// <summary>Throws from out-of-line methods so the hot paths stay small enough to inline.</summary>
internal static class ThrowHelper
{
    [DoesNotReturn]
    internal static void ThrowReservationExceeded(long needed, long left) =>
        throw new InvalidOperationException($"Batch reservation exceeded: the record needs {needed} bytes, {left} reserved bytes are left (or the key exceeds 65535 bytes).");

    /// <summary>A reader met the damaged run of records from <paramref name="expectedOffset"/> up to <paramref name="resumeOffset"/> (excluded).</summary>
    [DoesNotReturn]
    internal static void ThrowDamagedRead(string path, int position, long expectedOffset, long resumeOffset, RecordStatus status)
    {
        // A zero length word where the segment says records continue is damage too, not an end.
        var reason = status == RecordStatus.End ? "bad record length" : RecordLayout.Describe(status);
        var run = resumeOffset > expectedOffset + 1
            ? $"; offsets {expectedOffset} to {resumeOffset - 1} do not read, the next record that does is offset {resumeOffset}"
            : "";
        throw new JournalCorruptionException(
            path,
            position,
            expectedOffset,
            resumeOffset,
            reason,
            $"Journal record damaged: {reason} in '{path}' at byte position {position} (offset {expectedOffset}{run}). The reader stops there and delivers nothing from it on; the segment's bytes changed after they were written (run 'fastbroker journal verify'; JournalOptions.RepairCorruption truncates the journal there at the next open).");
    }

    [DoesNotReturn]
    internal static void ThrowOffsetMismatch(long firstOffset, long nextOffset) =>
        throw new JournalException(
            JournalErrorCode.OffsetMismatch,
            $"Replicated records start at offset {firstOffset} but the journal's next offset is {nextOffset}: nothing was written. Resend from {nextOffset}, or truncate the journal (JournalLog.TruncateFrom) if it holds records the primary does not.");

    [DoesNotReturn]
    internal static void ThrowBadReplicatedRecord(int position, long expectedOffset, string reason, int appended) =>
        throw new JournalCorruptionException(
            position,
            expectedOffset,
            reason,
            $"Replicated record rejected: {reason} at byte {position} of the input (expected offset {expectedOffset}). Nothing of it was written; the {appended} record(s) before it in this call were appended (next offset {expectedOffset}).");

    [DoesNotReturn]
    internal static void ThrowReplicatedRecordTooLarge(long offset, int stored, int max) =>
        throw new JournalException(JournalErrorCode.RecordTooLarge, $"Replicated record {offset} takes {stored} bytes, more than a segment of this journal holds ({max}): is the standby's SegmentSize smaller than the primary's?");
}
