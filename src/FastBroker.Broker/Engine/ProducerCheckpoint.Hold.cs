namespace FastBroker.Engine;

// Holding a topic's retention at the capture point of the producers.state on disk, and asking for a capture when it does.
internal sealed partial class ProducerCheckpoint
{
    private readonly object _writtenLock = new();
    private readonly Dictionary<TopicState, long> _writtenPoints = new(ReferenceEqualityComparer.Instance); // under _writtenLock
    private WrittenState _written; // under _writtenLock
    private int _asked; // 1: a retention pass waits for a capture that none taken since has answered

    private enum WrittenState
    {
        /// <summary>No file written by this broker yet: the one on disk is an earlier run's, its points not known here.</summary>
        None,

        /// <summary>The last write succeeded: <see cref="_writtenPoints"/> are the file's.</summary>
        Written,

        /// <summary>The last write failed (a full disk, say): retention is not held, so that it can free space.</summary>
        Failed,
    }

    /// <summary>
    /// Wakes the journaler when it may be idle (no batch, so no <see cref="ProducerRegistry.CaptureIfAsked"/>) while a
    /// capture is asked for: the broker publishes an input-ring slot that carries nothing. Null: not woken (before the
    /// pipeline exists; the open's own write comes then anyway).
    /// </summary>
    public Action? Wake { get; set; }

    /// <summary>Whether a retention pass asked for a capture that no capture since has answered (the journaler, at each batch).</summary>
    public bool Asked => Volatile.Read(ref _asked) != 0;

    /// <summary>
    /// Any thread (a journal's retention pass, through <see cref="Broker.RetentionFloorOf"/>): the lowest offset of
    /// <paramref name="topic"/> that retention must keep so that a restart after a crash still knows every producer
    /// that wrote to it. A restart knows a producer from the last <c>producers.state</c> written (its entries, also
    /// those whose record retention deleted, below the file's capture point of the topic) or from its rescan of the
    /// topic's records from that point (<see cref="Broker"/>'s RecoverProducers). An idempotent record at or after the
    /// point is in no file, so retention must not delete it before a capture that holds it is written: while the topic
    /// has one (<see cref="TopicState.NewestProducerRecord"/>), the floor is the point (long.MinValue, everything, for a
    /// topic the file does not name: created since), and a capture is asked for, so retention is held until the next
    /// write of the file (a journaler batch and a file write later; the next retention pass then deletes), not up to
    /// <see cref="Interval"/> records. Otherwise the journal's next offset as read before that check: no idempotent
    /// record lies between the point and it, so deleting them loses no producer. Before this broker's first write
    /// (during the open): long.MinValue. After a failed write: long.MaxValue (not held: the failure may be a full disk
    /// that only retention frees; logged with the failure, the limit of docs/broker.md applies meanwhile).
    /// </summary>
    /// <remarks>
    /// The journal's next offset is read before the topic's newest idempotent record, which the journaler stores before
    /// it appends that record (<see cref="TopicState.NewestProducerRecord"/>): a record below the offset read has its
    /// store visible here, so one this check misses is at or after the offset returned, which retention keeps.
    /// </remarks>
    public long RetentionFloor(TopicState topic)
    {
        if (topic.Journal is not { } journal)
        {
            return long.MaxValue;
        }

        var next = journal.NextOffset;
        var newest = Volatile.Read(ref topic.NewestProducerRecord);
        long point;
        lock (_writtenLock)
        {
            switch (_written)
            {
                case WrittenState.None:
                    return long.MinValue;
                case WrittenState.Failed:
                    return long.MaxValue;
            }

            point = _writtenPoints.TryGetValue(topic, out var p) ? p : long.MinValue;
        }

        if (newest < 0 || newest < point)
        {
            return next;
        }

        if (Interlocked.Exchange(ref _asked, 1) == 0)
        {
            Wake?.Invoke();
        }

        return point;
    }

    /// <summary>
    /// Inside <see cref="Write"/> (with <c>_writing</c> held, so the capture's points are stable): the file on disk is
    /// now this capture (its points are where each topic's retention is held), or its write failed.
    /// </summary>
    private void Written(bool succeeded)
    {
        lock (_writtenLock)
        {
            _written = succeeded ? WrittenState.Written : WrittenState.Failed;
            if (!succeeded)
            {
                return;
            }

            _writtenPoints.Clear(); // keeps its buckets: no allocation once it has held as many topics
            for (var i = 0; i < _pointCount; i++)
            {
                _writtenPoints[_points[i].Topic] = _points[i].Next;
            }
        }
    }
}
