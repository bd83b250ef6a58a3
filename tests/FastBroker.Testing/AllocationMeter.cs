namespace FastBroker.Testing;

/// <summary>
/// Measures steady-state allocation on the current thread. The first rounds include one-off costs (tiered JIT
/// call-counting stubs, OSR transitions, lazily built caches), so a body runs in several rounds and the
/// smallest round is returned: an allocation per operation shows up in every round and cannot hide.
/// </summary>
public static class AllocationMeter
{
    /// <summary>Runs <paramref name="round"/> up to <paramref name="rounds"/> times; returns the fewest bytes one round allocated.</summary>
    public static long MinBytesPerRound(Action round, int rounds = 8)
    {
        var min = long.MaxValue;
        for (var i = 0; i < rounds && min > 0; i++)
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            round();
            min = Math.Min(min, GC.GetAllocatedBytesForCurrentThread() - before);
        }

        return min;
    }
}
