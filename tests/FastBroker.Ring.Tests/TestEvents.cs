namespace FastBroker.Ring.Tests;

/// <summary>Class entry used across the tests.</summary>
public sealed class LongEvent
{
    public long Value;
    public int Producer;
    public long Stamp;
}

/// <summary>Struct entry used across the tests.</summary>
public struct LongValue
{
    public long Value;
    public int Producer;
    public long Stamp;
}
