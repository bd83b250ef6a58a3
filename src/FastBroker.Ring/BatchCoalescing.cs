using System.Diagnostics;

namespace FastBroker.Ring;

/// <summary>
/// Opt-in throughput setting of a spinning wait strategy, like a producer's linger time: when a batch event
/// processor finds fewer than <see cref="MinBatch"/> events available, it holds them for <see cref="MaxDelay"/>
/// and then hands its handler everything available by then as one batch.
/// </summary>
/// <remarks>
/// <para>
/// Why: a consumer that keeps pace with its producer event by event reads the cursor, and the slot the producer
/// is writing, after every few events; each read pulls those cache lines to the consumer's core, and the
/// producer's next publish has to take them back. Where that transfer is slow (a few hundred ns on some virtual
/// machines) the pair then moves a handful of events per transfer. Holding a small batch keeps the consumer
/// off those lines while the producer fills more slots (`fastbroker bench ring`: value-1p1c next to
/// value-1p1c-plain; perf-reports/ring.md).
/// </para>
/// <para>
/// Cost: every event that arrives in a batch smaller than <see cref="MinBatch"/>, including the first one after
/// an idle period, is handled up to <see cref="MaxDelay"/> later. A consumer behind by at least
/// <see cref="MinBatch"/> events never holds. Leave it off (the default) where per-event latency matters more
/// than throughput. The hold spins (it does not give up the core) and ends early when the processor is halted.
/// Worker pools and pollers ignore it.
/// </para>
/// </remarks>
public readonly record struct BatchCoalescing
{
    /// <summary>The longest hold allowed (the setting is meant for holds of about a microsecond).</summary>
    public static readonly TimeSpan MaxAllowedDelay = TimeSpan.FromSeconds(1);

    /// <summary>Creates a coalescing setting.</summary>
    /// <param name="minBatch">Batches smaller than this (at least 2) are held.</param>
    /// <param name="maxDelay">How long they are held: more than zero and at most <see cref="MaxAllowedDelay"/>.</param>
    public BatchCoalescing(int minBatch, TimeSpan maxDelay)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(minBatch, 2);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(maxDelay, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxDelay, MaxAllowedDelay);
        MinBatch = minBatch;
        MaxDelay = maxDelay;
        DelayTimestampTicks = Math.Max(1, (long)Math.Ceiling(maxDelay.TotalSeconds * Stopwatch.Frequency));
    }

    /// <summary>No coalescing: the consumer hands every batch to its handler as soon as it sees it.</summary>
    public static BatchCoalescing None => default;

    /// <summary>Batches smaller than this are held; 0 when coalescing is off.</summary>
    public int MinBatch { get; }

    /// <summary>How long a small batch is held.</summary>
    public TimeSpan MaxDelay { get; }

    /// <summary>True unless this is <see cref="None"/>.</summary>
    public bool IsEnabled => MinBatch > 0;

    /// <summary>The hold in <see cref="Stopwatch"/> ticks.</summary>
    internal long DelayTimestampTicks { get; }
}
