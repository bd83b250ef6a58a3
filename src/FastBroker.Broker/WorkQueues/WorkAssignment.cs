namespace FastBroker;

/// <summary>
/// One delivery of a work-queue message to a member. (<see cref="Offset"/>, <see cref="DeliveryCount"/>) is the
/// delivery tag: an ack or nack must name both, so a late ack for a delivery that already timed out and went to
/// another member is refused instead of acknowledging the message twice.
/// </summary>
/// <param name="MemberId">The member it went to.</param>
/// <param name="Offset">The message's topic offset.</param>
/// <param name="DeliveryCount">1 for the first delivery, 2 for the first redelivery, …</param>
/// <param name="Priority">The priority level it was dispatched from (higher first).</param>
public readonly record struct WorkAssignment(int MemberId, long Offset, int DeliveryCount, int Priority)
{
    /// <summary>Numbers the assignment, unique in its group: tells a stale queued copy from a new one with the same tag.</summary>
    internal long Sequence { get; init; }
}
