namespace FastBroker;

/// <summary>What an ack or nack did.</summary>
public enum WorkQueueOutcome
{
    /// <summary>The message is done (acked).</summary>
    Acked,

    /// <summary>The message goes back to the queue (now or after a delay).</summary>
    Requeued,

    /// <summary>The message moved to the dead-letter topic.</summary>
    DeadLettered,

    /// <summary>The delivery tag is not (or no longer) in flight for that member: nothing changed.</summary>
    UnknownDelivery,
}
