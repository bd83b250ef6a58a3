namespace FastBroker.Ring;

/// <summary>
/// How a consumer waits for a sequence to become available: spin, yield, sleep or block. One instance is
/// shared by a ring's sequencer (which signals on publish) and all of its barriers (which wait).
/// </summary>
/// <remarks>
/// Implementations return the highest available value of <see cref="SequenceBarrier.DependentValue"/> once it is
/// at least <c>sequence</c>, or one of the <see cref="WaitResult"/> sentinels. They must check
/// <see cref="SequenceBarrier.IsAlerted"/> while waiting so that halting a consumer is prompt.
/// </remarks>
public interface IWaitStrategy
{
    /// <summary>
    /// True when waiters may sleep on a signal: publishers and consumers then call
    /// <see cref="SignalAllWhenBlocking"/> after advancing a sequence; false saves them that call.
    /// </summary>
    bool IsBlockingStrategy { get; }

    /// <summary>Waits until <paramref name="barrier"/>'s dependent value reaches <paramref name="sequence"/>.</summary>
    /// <returns>The dependent value (≥ <paramref name="sequence"/>), <see cref="WaitResult.Alerted"/> or <see cref="WaitResult.TimedOut"/>.</returns>
    long WaitFor(long sequence, SequenceBarrier barrier);

    /// <summary>Wakes blocked waiters, if any (called after a sequence advanced or a barrier was alerted).</summary>
    void SignalAllWhenBlocking();

    /// <summary>
    /// Whether batch event processors pause after a small batch (see <see cref="BatchCoalescing"/>); off unless the
    /// strategy was created with it.
    /// </summary>
    BatchCoalescing Coalescing => BatchCoalescing.None;
}
