using FastBroker.Ring.Internal;

namespace FastBroker.Ring;

/// <summary>
/// Sleeps on a monitor until signalled: no CPU while idle, a few microseconds of wake-up latency. Publishers
/// and consumers pay a fence per publish/batch and take the lock only when a waiter is actually asleep.
/// </summary>
/// <remarks>
/// Waiters wait for <see cref="SequenceBarrier.DependentValue"/> (the cursor, or the upstream consumers'
/// sequences), and every batch event processor signals after advancing its sequence, so a downstream stage
/// sleeps too instead of spinning on its upstream.
/// </remarks>
public sealed class BlockingWaitStrategy : IWaitStrategy
{
    private readonly BlockingSignal _signal = new();
    private readonly TimeSpan? _timeout;

    /// <summary>Creates a blocking strategy; with <paramref name="timeout"/>, waits return <see cref="WaitResult.TimedOut"/> after it.</summary>
    /// <param name="timeout">Positive; null or <see cref="Timeout.InfiniteTimeSpan"/> for none.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is zero or negative (other than infinite).</exception>
    public BlockingWaitStrategy(TimeSpan? timeout = null) => _timeout = BlockingSignal.ValidateTimeout(timeout, nameof(timeout));

    /// <inheritdoc />
    public bool IsBlockingStrategy => true;

    /// <inheritdoc />
    public long WaitFor(long sequence, SequenceBarrier barrier)
    {
        var available = barrier.DependentValue;
        if (available >= sequence)
        {
            return available;
        }

        return _signal.Wait(sequence, barrier, BlockingSignal.DeadlineFrom(_timeout));
    }

    /// <inheritdoc />
    public void SignalAllWhenBlocking() => _signal.Signal();
}
