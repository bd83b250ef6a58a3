namespace FastBroker.Engine;

/// <summary>
/// Which of a topic's offsets have been counted as expired, so that the topic's <c>expired</c> counter counts a message
/// once however many consumers (work-queue groups, subscriptions) skip it. 2048 slots of 64 bits (16 KiB, allocated
/// with the topic's first expired message): each holds a generation (high 32 bits: offset / 65,536) and the bitmap of
/// 32 consecutive offsets of that generation (low 32 bits), claimed with one compare-and-swap. No lock and no allocation
/// per message, and only a consumer that skips an expired message comes here, never one that delivers.
/// </summary>
/// <remarks>
/// Exact while the consumers that skip a message are within 65,536 offsets of one another, which covers consumers
/// reading near the head. A consumer further behind finds its slot taken by a newer generation and does not count at
/// the topic level (a later generation evicts an older one): at most once, never twice.
/// </remarks>
internal sealed class ExpiredOffsets
{
    /// <summary>2048 × 32 offsets: a window of 65,536.</summary>
    private const int Slots = 2048;
    private const int GenerationShift = 16;

    private readonly long[] _slots = new long[Slots];

    /// <summary>True for the first claim of <paramref name="offset"/> (the caller counts it), false for every later one.</summary>
    public bool TryClaim(long offset)
    {
        var generation = (uint)(offset >> GenerationShift);
        var bit = 1L << (int)(offset & 31);
        ref var slot = ref _slots[(int)((offset >> 5) & (Slots - 1))];
        while (true)
        {
            var current = Volatile.Read(ref slot);
            var held = (uint)((ulong)current >> 32);
            long next;
            if (held == generation)
            {
                if ((current & bit) != 0)
                {
                    return false;
                }

                next = current | bit;
            }
            else if (held < generation)
            {
                next = ((long)generation << 32) | bit;
            }
            else
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref slot, next, current) == current)
            {
                return true;
            }
        }
    }
}
