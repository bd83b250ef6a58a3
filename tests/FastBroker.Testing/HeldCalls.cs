namespace FastBroker.Testing;

/// <summary>
/// Holds every call of a callback under test (a timer tick's hook, a log line) until <see cref="Release"/>, counting the
/// calls that entered and the most that were held at once: a timer whose next callbacks must not start while one is
/// held shows <see cref="MaxInFlight"/> of 1 however many callbacks fired meanwhile.
/// </summary>
public sealed class HeldCalls : IDisposable
{
    private readonly ManualResetEventSlim _release = new(false);
    private int _inFlight;
    private int _maxInFlight;
    private int _entered;

    /// <summary>How many calls have entered <see cref="Hold"/>.</summary>
    public int Entered => Volatile.Read(ref _entered);

    /// <summary>The most calls held in <see cref="Hold"/> at once.</summary>
    public int MaxInFlight => Volatile.Read(ref _maxInFlight);

    /// <summary>Counts this call and waits until <see cref="Release"/> (or <see cref="Eventually.DefaultTimeout"/>).</summary>
    public void Hold()
    {
        var now = Interlocked.Increment(ref _inFlight);
        RaiseMax(now);
        Interlocked.Increment(ref _entered);
        try
        {
            _release.Wait(Eventually.DefaultTimeout); // held until the test lets it go
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
    }

    /// <summary>Lets every held call and every later one go.</summary>
    public void Release() => _release.Set();

    /// <summary>Releases the calls, then frees the gate.</summary>
    public void Dispose()
    {
        _release.Set();
        _release.Dispose();
    }

    private void RaiseMax(int value)
    {
        var seen = Volatile.Read(ref _maxInFlight);
        while (value > seen)
        {
            var was = Interlocked.CompareExchange(ref _maxInFlight, value, seen);
            if (was == seen)
            {
                return;
            }

            seen = was;
        }
    }
}
