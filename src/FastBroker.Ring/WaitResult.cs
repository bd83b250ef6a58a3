namespace FastBroker.Ring;

/// <summary>
/// Sentinel values returned by <see cref="IWaitStrategy.WaitFor"/> and <see cref="SequenceBarrier.WaitFor"/>
/// instead of a sequence. Real sequences are never below <see cref="Sequence.InitialValue"/> (-1), so any
/// value below that is a sentinel: no exception is thrown on the hot path for a halt or a timeout.
/// </summary>
public static class WaitResult
{
    /// <summary>The barrier was alerted (the consumer is being halted).</summary>
    public const long Alerted = long.MinValue;

    /// <summary>The wait strategy's timeout elapsed before the sequence became available.</summary>
    public const long TimedOut = long.MinValue + 1;

    /// <summary>True for <see cref="Alerted"/> and <see cref="TimedOut"/>.</summary>
    public static bool IsSentinel(long value) => value < Sequence.InitialValue;
}
