namespace FastBroker.Ring;

/// <summary>
/// Spins, then yields, then sleeps 1 ms at a time: near-zero idle CPU without any signalling cost for
/// publishers, at the price of up to ~1 ms of extra latency after an idle period (Thread.Sleep(1) on Linux).
/// </summary>
public sealed class SleepingWaitStrategy : IWaitStrategy
{
    private const int SpinTries = 100;
    private const int YieldTries = 100;

    /// <inheritdoc />
    public bool IsBlockingStrategy => false;

    /// <inheritdoc />
    public long WaitFor(long sequence, SequenceBarrier barrier)
    {
        var counter = SpinTries + YieldTries;
        long available;
        while ((available = barrier.DependentValue) < sequence)
        {
            if (barrier.IsAlerted)
            {
                return WaitResult.Alerted;
            }

            if (counter > YieldTries)
            {
                counter--;
                Thread.SpinWait(1);
            }
            else if (counter > 0)
            {
                counter--;
                Thread.Yield();
            }
            else
            {
                Thread.Sleep(1);
            }
        }

        return available;
    }

    /// <inheritdoc />
    public void SignalAllWhenBlocking()
    {
    }
}
