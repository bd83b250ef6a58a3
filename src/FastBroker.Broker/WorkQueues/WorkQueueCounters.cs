namespace FastBroker;

/// <summary>A consistent snapshot of a work-queue group's counters.</summary>
/// <param name="AckFloor">Every offset below is acked or dead-lettered.</param>
/// <param name="NextOffset">The next topic offset the group will take in.</param>
/// <param name="Ready">Messages waiting for a member (including delayed nacks).</param>
/// <param name="InFlight">Messages delivered and not yet acked.</param>
/// <param name="Acked">Messages acked since the group was loaded.</param>
/// <param name="Redelivered">Deliveries returned to the queue (nack with requeue, visibility timeout, member left).</param>
/// <param name="DeadLettered">Messages moved to the dead-letter topic.</param>
/// <param name="Members">Members currently attached.</param>
/// <param name="Delayed">Of <paramref name="Ready"/>, the nacked messages waiting out their delay.</param>
public readonly record struct WorkQueueCounters(long AckFloor, long NextOffset, int Ready, int InFlight, long Acked, long Redelivered, long DeadLettered, int Members, int Delayed = 0);
