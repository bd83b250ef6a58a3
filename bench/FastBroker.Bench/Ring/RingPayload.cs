namespace FastBroker.Bench.Ring;

/// <summary>
/// The message every ring scenario and its channel baseline carry: 16 bytes, a value and a send timestamp.
/// Struct rings and channels hold it inline; the class ring holds it in a <see cref="RingEntry"/>.
/// </summary>
public struct RingPayload
{
    public long Value;
    public long Timestamp;
}
