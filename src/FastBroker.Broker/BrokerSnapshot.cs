namespace FastBroker;

/// <summary>Counters and lags of a whole broker at one moment.</summary>
/// <param name="Topics">Per topic.</param>
/// <param name="Subscriptions">Per subscription.</param>
/// <param name="Groups">Per work-queue group.</param>
public sealed record BrokerSnapshot(IReadOnlyList<TopicSnapshot> Topics, IReadOnlyList<SubscriptionSnapshot> Subscriptions, IReadOnlyList<GroupSnapshot> Groups)
{
    /// <summary>
    /// Idempotent producers the broker keeps a deduplication window for (those that wrote within
    /// <see cref="BrokerOptions.ProducerExpiry"/>).
    /// </summary>
    public int Producers { get; init; }

    /// <summary>
    /// Per (pattern, durable name), ordered, the counters of the open subscriptions plus those of the closed ones: they
    /// never go down while the broker runs, so they suit monotonic counters (the <c>/metrics</c> <c>_total</c> series).
    /// A pattern with no open subscription is remembered while it is among the 4096 most recently closed; the one
    /// closed longest ago beyond that is forgotten (subscribed to again, its counters start from 0).
    /// </summary>
    public IReadOnlyList<SubscriptionTotals> SubscriptionTotals { get; init; } = [];
}

/// <summary>One topic's counters.</summary>
/// <param name="Name">Topic name.</param>
/// <param name="Persistent">Journaled or in memory.</param>
/// <param name="Tail">Oldest offset kept.</param>
/// <param name="Head">Next offset to be given (= messages ever published).</param>
/// <param name="Published">Messages accepted since the broker opened.</param>
/// <param name="PublishedBytes">Payload bytes accepted since the broker opened.</param>
/// <param name="Expired">
/// Messages that expired before delivery (skipped by a work-queue group or subscription because their TTL had passed),
/// each counted once however many consumers skipped it; the groups' and subscriptions' own counters count their skips.
/// </param>
public sealed record TopicSnapshot(string Name, bool Persistent, long Tail, long Head, long Published, long PublishedBytes, long Expired)
{
    /// <summary>
    /// A transient topic's memory for message contents (0 for a persistent topic): every slot's own buffer
    /// (<c>TransientCapacity × min(MaxMessageBytes, InputEntryBytes)</c>, allocated when the topic is created) plus a
    /// pooled array for each larger message the ring still holds, which goes back to the pool once the ring has moved
    /// past it (docs/broker.md, "Transient topics' memory").
    /// </summary>
    public long TransientSlotBytes { get; init; }

    /// <summary>
    /// Damaged records of this persistent topic that its readers (subscriptions, work-queue groups) met since the
    /// broker opened, each counted once however many met it; each is logged once and never delivered (docs/broker.md,
    /// "A damaged record"). The count stops at 64, the offsets kept to tell a record met again from a new one: past
    /// them <see cref="DamagedRecordsAtLeast"/> is true and the count is a lower bound.
    /// </summary>
    public long DamagedRecords { get; init; }

    /// <summary>
    /// True when readers met more damaged records than the 64 counted: <see cref="DamagedRecords"/> says "at least".
    /// </summary>
    public bool DamagedRecordsAtLeast { get; init; }

    /// <summary>The lowest offset of a damaged record readers met (those past the 64 counted included), or -1 when there is none.</summary>
    public long FirstDamagedOffset { get; init; } = -1;
}

/// <summary>One subscription's counters.</summary>
/// <param name="Pattern">Its topic pattern.</param>
/// <param name="DurableName">Its durable name, if any.</param>
/// <param name="Delivered">Messages delivered.</param>
/// <param name="Lag">Head − position, summed over its topics.</param>
/// <param name="Expired">Skipped because expired.</param>
/// <param name="Filtered">Skipped by header filters.</param>
/// <param name="Missed">Lost by falling a whole ring behind (transient topics) or to retention before being read (persistent topics).</param>
/// <param name="Positions">Next offset per topic.</param>
public sealed record SubscriptionSnapshot(string Pattern, string? DurableName, long Delivered, long Lag, long Expired, long Filtered, long Missed, IReadOnlyDictionary<string, long> Positions)
{
    /// <summary>
    /// The memory the subscription holds to copy transient messages out of their rings (0 when it matches no transient
    /// topic): for each transient topic a buffer of its own as long as a slot's
    /// (<c>min(MaxMessageBytes, InputEntryBytes)</c>), plus a pooled array only while a longer message is being delivered,
    /// given back to the pool once its delivery is done (docs/broker.md, "Transient topics' memory").
    /// </summary>
    public long TransientCopyBytes { get; init; }
}

/// <summary>One work-queue group's counters.</summary>
/// <param name="Topic">The topic it consumes.</param>
/// <param name="Group">Its name.</param>
/// <param name="Members">Members attached.</param>
/// <param name="AckFloor">Every offset below is acked or dead-lettered.</param>
/// <param name="Lag">Head − ack floor.</param>
/// <param name="Ready">Waiting for a member.</param>
/// <param name="InFlight">Delivered, not yet acked.</param>
/// <param name="Acked">Acked since the broker opened.</param>
/// <param name="Redelivered">Deliveries returned to the queue.</param>
/// <param name="DeadLettered">Moved to the dead-letter topic.</param>
/// <param name="Expired">Skipped because expired.</param>
public sealed record GroupSnapshot(string Topic, string Group, int Members, long AckFloor, long Lag, int Ready, int InFlight, long Acked, long Redelivered, long DeadLettered, long Expired)
{
    /// <summary>
    /// Dead letters given up on but not yet stored in the dead-letter topic (being published, or retried while the
    /// topic refuses them): the group's floor waits at the oldest. Stays above 0 while the cause lasts.
    /// </summary>
    public int DeadLettersPending { get; init; }

    /// <summary>
    /// Dead letters dropped because the dead-letter topic can never store them (too large for its segments, invalid
    /// name), each reported to <see cref="BrokerOptions.Log"/>; they stay in the source topic until retention.
    /// </summary>
    public long DeadLettersDropped { get; init; }

    /// <summary>
    /// Times the group's feed loop failed since the broker opened (each logged, limited by text, and followed by a
    /// bounded wait before the loop runs again; the broker's timer pumps the group meanwhile). Above 0 means a fault
    /// to look into in the log.
    /// </summary>
    public long FeedLoopFailures { get; init; }
}

/// <summary>
/// The counters of every subscription with one pattern and durable name since the broker opened, closed ones
/// included: unlike the sum over the open <see cref="BrokerSnapshot.Subscriptions"/>, they never go down (see
/// <see cref="BrokerSnapshot.SubscriptionTotals"/> for how long a pattern with no open subscription is remembered).
/// </summary>
/// <param name="Pattern">The topic pattern.</param>
/// <param name="DurableName">The durable name, or null.</param>
/// <param name="Open">Subscriptions with this pattern and durable name open now.</param>
/// <param name="Delivered">Messages delivered.</param>
/// <param name="Expired">Skipped because expired.</param>
/// <param name="Filtered">Skipped by header filters.</param>
/// <param name="Missed">Lost by falling a whole ring behind (transient topics) or to retention before being read (persistent topics).</param>
public sealed record SubscriptionTotals(string Pattern, string? DurableName, int Open, long Delivered, long Expired, long Filtered, long Missed);
