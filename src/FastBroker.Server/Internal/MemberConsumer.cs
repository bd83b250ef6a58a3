namespace FastBroker.Server.Internal;

/// <summary>A work-queue membership: the group limits deliveries to the member's prefetch, so no credit is kept here.</summary>
internal sealed class MemberConsumer(Session session, uint id, WorkQueueMember member) : Consumer(session, id, 0)
{
    private const int MaxPerFetch = 256;

    // Deliveries the member's fetch handed over but the encoder did not write (error path only, writer thread).
    private List<(long Offset, int DeliveryCount)>? _unsent;

    public WorkQueueMember Member { get; } = member;

    public override int Available => MaxPerFetch;

    public override int Deliver(DeliveryEncoder encoder, int max, out bool more)
    {
        var handler = new MemberDeliverHandler(encoder, this);
        encoder.Begin(this);
        try
        {
            var n = Member.Fetch(max, ref handler);
            more = n == max;
            return n;
        }
        finally
        {
            encoder.End();
            GiveBackUnsent();
        }
    }

    // The delivery too large for the client's frame limit (error path only, writer thread).
    private (long Offset, int DeliveryCount, string Reason)? _tooLarge;

    /// <summary>Notes a fetched delivery that never reached the connection (too large for the client, or the write failed).</summary>
    public void NoteUnsent(long offset, int deliveryCount) => (_unsent ??= []).Add((offset, deliveryCount));

    /// <summary>Notes the delivery too large for the client, which ends the membership: it is nacked as a failed attempt.</summary>
    public void NoteTooLarge(long offset, int deliveryCount, string reason) => _tooLarge = (offset, deliveryCount, reason);

    protected override ValueTask WaitReadableAsync() => Member.WaitAsync();

    // Dispose, not Abandon: the member's unacked deliveries go back to the group at once (docs/protocol.md §8).
    protected override void ReleaseBrokerObject() => Member.Dispose();

    /// <summary>
    /// A delivery the client never got is no attempt (docs/protocol.md §8): it goes back with its count restored before
    /// the writer ends the membership, instead of counting toward maxDeliveries with the ones really written.
    /// </summary>
    private void GiveBackUnsent()
    {
        if (_tooLarge is { } tooLarge)
        {
            // A failed attempt, whatever the leave that follows counts (only the first delivery the member was handed).
            _tooLarge = null;
            Member.Nack(tooLarge.Offset, tooLarge.DeliveryCount, requeue: true, error: tooLarge.Reason);
        }

        if (_unsent is not { Count: > 0 } unsent)
        {
            return;
        }

        foreach (var (offset, deliveryCount) in unsent)
        {
            Member.GiveBack(offset, deliveryCount);
        }

        unsent.Clear();
    }
}
