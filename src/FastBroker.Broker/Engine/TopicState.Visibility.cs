namespace FastBroker.Engine;

// The consumer-visible end: on the primary of a failover pair with a consumer visibility other than local, readers are
// given only what the standby holds (Kafka's high watermark), a bound apart from the durable end the replicator reads to.
internal sealed partial class TopicState
{
    private long _visibleEnd = long.MaxValue;

    /// <summary>
    /// The end (exclusive) the topic's consumers (subscriptions, work-queue groups) may read up to, besides the durable
    /// end (<see cref="ReadableEnd"/>): <see cref="long.MaxValue"/> (no further bound) on a single broker, with
    /// <see cref="AckMode.Local"/> consumer visibility and while visibility degrades to local; otherwise what the standby
    /// acknowledged holding (received or flushed, <see cref="ReplicationGate.ConsumerVisibility"/>). Never above the
    /// durable end but as <see cref="long.MaxValue"/>: the standby is sent only durable records. Any thread.
    /// </summary>
    public long VisibleEnd => Volatile.Read(ref _visibleEnd);

    /// <summary>
    /// Sets <see cref="VisibleEnd"/> (the replication gate, under its topic's ack lock) and returns true when it rose:
    /// the caller then wakes the readers (<see cref="WakeReaders"/>), outside its locks. A lower value (a standby that
    /// attached behind the one before, or visibility no longer degraded) wakes nobody: readers already past it wait for it.
    /// </summary>
    /// <remarks>
    /// A full fence (the exchange) before the caller wakes anyone, paired with the one in <see cref="NewRecordsVisible"/>:
    /// either the dispatcher sees the new bound and wakes the readers itself, or the readers woken here see the
    /// dispatcher's durable end.
    /// </remarks>
    public bool SetVisibleEnd(long end) => Interlocked.Exchange(ref _visibleEnd, end) < end;

    /// <summary>
    /// Dispatcher: whether the records it just made durable are visible to consumers now. While the bound is below
    /// the durable end they are not, and the readers are woken when it rises past them instead: one wake-up per
    /// acknowledgement, not one more per batch that finds nothing to read.
    /// </summary>
    private bool NewRecordsVisible()
    {
        if (Volatile.Read(ref _visibleEnd) == long.MaxValue)
        {
            return true; // no bound: the common case costs one read
        }

        Interlocked.MemoryBarrier(); // the durable end's store before the bound's load (pairs with SetVisibleEnd)
        return Volatile.Read(ref _visibleEnd) >= ReadableEnd;
    }
}
