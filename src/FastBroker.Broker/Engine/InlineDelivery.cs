namespace FastBroker.Engine;

/// <summary>
/// Runs an inline subscription's handler on the thread that makes messages readable (the dispatcher, or the
/// durability notifier of an fsynced topic). Calls never overlap: one that finds another running leaves a request
/// behind and returns at once (the dispatcher never waits for a catch-up), and the running one drains again.
/// </summary>
internal abstract class InlineDelivery
{
    private int _requests;

    /// <summary>Delivers what is readable now, or leaves that to the call already running. Allocation-free.</summary>
    public void Deliver()
    {
        if (Interlocked.Increment(ref _requests) != 1)
        {
            return;
        }

        var seen = 1;
        while (true)
        {
            Drain();
            var left = Interlocked.Add(ref _requests, -seen);
            if (left == 0)
            {
                return;
            }

            seen = left;
        }
    }

    /// <summary>Hands everything readable to the handler.</summary>
    protected abstract void Drain();
}
