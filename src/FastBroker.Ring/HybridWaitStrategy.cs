using FastBroker.Ring.Internal;

namespace FastBroker.Ring;

/// <summary>
/// The default: spin briefly, then yield, then block on a monitor. Bursts are picked up within
/// microseconds while spinning; an idle consumer sleeps and burns no CPU, which matters on a 2-core
/// machine where a forever-spinning consumer would steal the producer's core.
/// </summary>
/// <remarks>
/// The spin phase (<see cref="DefaultSpinTries"/> checks, a few microseconds) covers the common case of a
/// publisher on another core; the yield phase (<see cref="DefaultYieldTries"/> yields) lets a producer on the
/// same core run; only then does the waiter register as asleep, after which publishers pay the lock (see
/// <see cref="BlockingWaitStrategy"/> for the signalling protocol and its cost).
/// </remarks>
public sealed class HybridWaitStrategy : IWaitStrategy
{
    /// <summary>Spin checks before yielding: ~2-5 µs.</summary>
    public const int DefaultSpinTries = 100;

    /// <summary>Yields before blocking.</summary>
    public const int DefaultYieldTries = 20;

    private readonly BlockingSignal _signal = new();
    private readonly int _spinTries;
    private readonly int _yieldTries;
    private readonly TimeSpan? _timeout;

    /// <summary>Creates a hybrid strategy.</summary>
    /// <param name="timeout">When set, a wait that blocks returns <see cref="WaitResult.TimedOut"/> after this long: positive; null or <see cref="Timeout.InfiniteTimeSpan"/> for none.</param>
    /// <param name="spinTries">Spin checks before yielding.</param>
    /// <param name="yieldTries">Yields before blocking.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is zero or negative (other than infinite), or a try count is negative.</exception>
    public HybridWaitStrategy(TimeSpan? timeout = null, int spinTries = DefaultSpinTries, int yieldTries = DefaultYieldTries)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(spinTries);
        ArgumentOutOfRangeException.ThrowIfNegative(yieldTries);
        _timeout = BlockingSignal.ValidateTimeout(timeout, nameof(timeout));
        _spinTries = spinTries;
        _yieldTries = yieldTries;
    }

    /// <inheritdoc />
    public bool IsBlockingStrategy => true;

    /// <inheritdoc />
    public long WaitFor(long sequence, SequenceBarrier barrier)
    {
        long available;
        for (var i = 0; i < _spinTries; i++)
        {
            if ((available = barrier.DependentValue) >= sequence)
            {
                return available;
            }

            if (barrier.IsAlerted)
            {
                return WaitResult.Alerted;
            }

            Thread.SpinWait(1);
        }

        for (var i = 0; i < _yieldTries; i++)
        {
            if ((available = barrier.DependentValue) >= sequence)
            {
                return available;
            }

            if (barrier.IsAlerted)
            {
                return WaitResult.Alerted;
            }

            Thread.Yield();
        }

        return _signal.Wait(sequence, barrier, BlockingSignal.DeadlineFrom(_timeout));
    }

    /// <inheritdoc />
    public void SignalAllWhenBlocking() => _signal.Signal();
}
