using System.Diagnostics.CodeAnalysis;

namespace FastBroker.Journal.Internal;

/// <summary>Throws from out-of-line methods so the hot paths stay small enough to inline.</summary>
internal static class ThrowHelper
{
    [DoesNotReturn]
    internal static void ThrowReservationExceeded(long needed, long left) =>
        throw new InvalidOperationException($"Batch reservation exceeded: the record needs {needed} bytes, {left} reserved bytes are left (or the key exceeds 65535 bytes).");

    [DoesNotReturn]
    internal static void ThrowCorruptRecord(string path, long position, long expectedOffset, string reason) =>
        throw new JournalCorruptionException(path, position, expectedOffset, reason);

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
