using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using FastBroker.Journal.Internal;

namespace FastBroker.Journal;

// A damaged record met: the run of damage it starts, learned once, in the exception of every read that meets it.
public sealed partial class JournalReader
{
    // The damaged run this reader last met: its first offset (in _damagedSegment) and where it ends (ResumeOffset).
    private Segment? _damagedSegment;
    private long _damagedAt = -1;
    private long _damagedRunEnd;

    /// <summary>
    /// Throws <see cref="JournalCorruptionException"/> for the damaged record at <paramref name="position"/> (expected
    /// <paramref name="expectedOffset"/>), with the run of damage from it (<see cref="JournalCorruptionException.ResumeOffset"/>):
    /// found by one pass over the run (<see cref="JournalLog.DamagedRunEnd"/>) the first time, and kept, since the reader
    /// stays before the record and every later read meets it again (a subscription fetching, a feed's timer ticks).
    /// </summary>
    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowDamaged(Segment segment, int position, long expectedOffset, RecordStatus status)
    {
        if (_damagedAt != expectedOffset || !ReferenceEquals(_damagedSegment, segment))
        {
            _damagedRunEnd = _log.DamagedRunEnd(segment, expectedOffset, position);
            (_damagedSegment, _damagedAt) = (segment, expectedOffset);
        }

        ThrowHelper.ThrowDamagedRead(segment.FilePath, position, expectedOffset, _damagedRunEnd, status);
    }
}
