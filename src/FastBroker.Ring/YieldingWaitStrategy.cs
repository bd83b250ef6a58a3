namespace FastBroker.Ring;

/// <summary>
/// Spins briefly, then calls <see cref="Thread.Yield"/> in a loop: low latency and gives the core away when
/// another thread wants it, but still shows as 100 % CPU when idle. Good for more threads than cores when
/// throughput matters more than idle CPU.
/// </summary>
public sealed class YieldingWaitStrategy : IWaitStrategy
{
    private const int SpinTries = 100;

    /// <summary>Creates the strategy.</summary>
    /// <param name="coalescing">Opt-in pause after small batches for throughput (see <see cref="BatchCoalescing"/>); off by default.</param>
    public YieldingWaitStrategy(BatchCoalescing coalescing = default) => Coalescing = coalescing;

    /// <inheritdoc />
    public bool IsBlockingStrategy => false;

    /// <inheritdoc />
    public BatchCoalescing Coalescing { get; }

    /// <inheritdoc />
    public long WaitFor(long sequence, SequenceBarrier barrier)
    {
        var counter = SpinTries;
        long available;
        while ((available = barrier.DependentValue) < sequence)
        {
            if (barrier.IsAlerted)
            {
                return WaitResult.Alerted;
            }

            if (counter > 0)
            {
                counter--;
                Thread.SpinWait(1);
            }
            else
            {
                Thread.Yield();
            }
        }

        return available;
    }

    /// <inheritdoc />
    public void SignalAllWhenBlocking()
    {
    }
}
