using System.Runtime.CompilerServices;

namespace FastBroker.Ring;

/// <summary>
/// Spins on the dependent sequence without ever giving up the core: the lowest latency (sub-microsecond
/// hand-off) and one core burnt per waiting consumer. Opt-in only: use it when every spinning thread has a
/// core of its own (on this 2-core machine: one producer and one consumer at most).
/// </summary>
public sealed class BusySpinWaitStrategy : IWaitStrategy
{
    /// <summary>Creates the strategy.</summary>
    /// <param name="coalescing">Opt-in pause after small batches for throughput (see <see cref="BatchCoalescing"/>); off by default.</param>
    public BusySpinWaitStrategy(BatchCoalescing coalescing = default) => Coalescing = coalescing;

    /// <inheritdoc />
    public bool IsBlockingStrategy => false;

    /// <inheritdoc />
    public BatchCoalescing Coalescing { get; }

    /// <inheritdoc />
    public long WaitFor(long sequence, SequenceBarrier barrier)
    {
        long available;
        while ((available = barrier.DependentValue) < sequence)
        {
            if (barrier.IsAlerted)
            {
                return WaitResult.Alerted;
            }

            SpinPause();
        }

        return available;
    }

    /// <inheritdoc />
    public void SignalAllWhenBlocking()
    {
    }

    // One PAUSE-like hint: keeps the spinning core from starving its SMT sibling and from flooding the memory
    // pipeline, at ~10-40 ns a go (far below the 2 µs ping-pong budget).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SpinPause() => Thread.SpinWait(1);
}
