namespace FastBroker.Server.Internal;

/// <summary>A fan-out subscription: deliveries limited by the client's credit.</summary>
internal sealed class SubscriptionConsumer(Session session, uint id, Subscription subscription, long credit) : Consumer(session, id, credit)
{
    // 256: one fetch per consumer per writer pass, so one busy subscription cannot starve the others.
    private const int MaxPerFetch = 256;

    public Subscription Subscription { get; } = subscription;

    /// <summary>The broker's <see cref="FastBroker.Subscription.Missed"/> count already reported with DROPPED (writer thread).</summary>
    public long MissedReported { get; set; }

    public override int Available => (int)Math.Clamp(Credit, 0, MaxPerFetch);

    public override int Deliver(DeliveryEncoder encoder, int max, out bool more)
    {
        var handler = new DeliverHandler(encoder);
        encoder.Begin(this);
        var n = 0;
        var examined = 0;
        try
        {
            n = Subscription.Fetch(max, ref handler, out examined);
        }
        finally
        {
            encoder.End();
            ConsumeCredit(n);
        }

        // Records a header filter or a TTL skipped count too: a batch of them is not the end of what is readable.
        more = n == max || examined >= max;
        return n;
    }

    protected override ValueTask WaitReadableAsync() => Subscription.WaitAsync();

    protected override void ReleaseBrokerObject() => Subscription.Dispose();
}
