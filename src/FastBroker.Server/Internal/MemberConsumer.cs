namespace FastBroker.Server.Internal;

/// <summary>A work-queue membership: the group limits deliveries to the member's prefetch, so no credit is kept here.</summary>
internal sealed class MemberConsumer(Session session, uint id, WorkQueueMember member) : Consumer(session, id, 0)
{
    private const int MaxPerFetch = 256;

    public WorkQueueMember Member { get; } = member;

    public override int Available => MaxPerFetch;

    public override int Deliver(DeliveryEncoder encoder, int max, out bool more)
    {
        var handler = new DeliverHandler(encoder);
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
        }
    }

    protected override ValueTask WaitReadableAsync() => Member.WaitAsync();

    // Dispose, not Abandon: the member's unacked deliveries go back to the group at once (docs/protocol.md §8).
    protected override void ReleaseBrokerObject() => Member.Dispose();
}
