namespace FastBroker.Bench.Ring;

/// <summary>The class-entry form of <see cref="RingPayload"/> for <c>class-1p1c</c>: one pre-allocated object per slot.</summary>
public sealed class RingEntry
{
    public long Value;
    public long Timestamp;
}
