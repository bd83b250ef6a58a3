using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace FastBroker.Ring.Internal;

/// <summary>
/// The sleep/wake half of the blocking wait strategies: a monitor plus a "someone may be asleep" flag, so that a
/// publisher pays one fence and one load per publish and takes the lock only for the first publish after a
/// waiter went to sleep (not for every publish until the sleeper has been scheduled again).
/// </summary>
/// <remarks>
/// Lost wake-ups are impossible by a Dekker argument: the sleeper sets <c>_sleeping</c> (an interlocked exchange,
/// a full fence) under the lock and then re-reads the sequence; the signaller writes the sequence, issues a full
/// fence and then reads <c>_sleeping</c>. At least one of them sees the other's write: either the sleeper sees
/// the new sequence and does not sleep, or the signaller sees the flag, clears it and pulses under the lock,
/// which it can only take once the sleeper is inside <see cref="Monitor.Wait(object)"/>. A sleeper sets the flag
/// again before every wait, so a wake-up meant for another condition costs it only a re-check. Explicit
/// layout keeps the flag, read on every publish, off any cache line that is written on the hot path.
/// </remarks>
[StructLayout(LayoutKind.Explicit)]
internal sealed class BlockingSignal
{
    [FieldOffset(Sequence.PaddingBytes)]
    private readonly object _gate = new();

    [FieldOffset(Sequence.PaddingBytes + 8)]
    private int _sleeping;

    // StructLayout.Size is ignored for classes: reserve the trailing 128 bytes with a field.
#pragma warning disable CS0169, IDE0051 // never read: it only reserves space
    [FieldOffset((2 * Sequence.PaddingBytes) + 16 - sizeof(long))]
    private readonly long _trailingPadding;
#pragma warning restore CS0169, IDE0051

    /// <summary>Wakes sleepers, if any. Call after the store that a sleeper may be waiting for.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Signal()
    {
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref _sleeping) != 0)
        {
            SignalSlow();
        }
    }

    /// <summary>
    /// Sleeps until the barrier's dependent value reaches <paramref name="sequence"/>, the barrier is alerted,
    /// or <paramref name="deadline"/> (a <see cref="Stopwatch"/> timestamp; <see cref="long.MaxValue"/> = none) passes.
    /// </summary>
    public long Wait(long sequence, SequenceBarrier barrier, long deadline)
    {
        lock (_gate)
        {
            while (true)
            {
                Interlocked.Exchange(ref _sleeping, 1);
                var available = barrier.DependentValue;
                if (available >= sequence)
                {
                    return available;
                }

                if (barrier.IsAlerted)
                {
                    return WaitResult.Alerted;
                }

                if (deadline == long.MaxValue)
                {
                    Monitor.Wait(_gate);
                }
                else
                {
                    var remaining = deadline - Stopwatch.GetTimestamp();
                    if (remaining <= 0)
                    {
                        return WaitResult.TimedOut;
                    }

                    var ms = (int)Math.Min(int.MaxValue, Math.Max(1, remaining * 1000 / Stopwatch.Frequency));
                    Monitor.Wait(_gate, ms);
                }
            }
        }
    }

    /// <summary>
    /// A wait strategy's timeout as given, or null for none (null or <see cref="Timeout.InfiniteTimeSpan"/>). Zero and
    /// other negative values are refused: every wait would time out at once and the consumer would spin through
    /// timeout callbacks.
    /// </summary>
    public static TimeSpan? ValidateTimeout(TimeSpan? timeout, string paramName)
    {
        if (timeout is not { } t || t == Timeout.InfiniteTimeSpan)
        {
            return null;
        }

        if (t <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(paramName, t, "A wait timeout must be positive, or null / Timeout.InfiniteTimeSpan for none.");
        }

        return t;
    }

    /// <summary>Timestamp <paramref name="timeout"/> from now, or <see cref="long.MaxValue"/> for none or one too far away to represent.</summary>
    public static long DeadlineFrom(TimeSpan? timeout)
    {
        if (timeout is not { } t)
        {
            return long.MaxValue;
        }

        var now = Stopwatch.GetTimestamp();
        var ticks = t.TotalSeconds * Stopwatch.Frequency;
        return ticks >= long.MaxValue - now ? long.MaxValue : now + (long)ticks;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void SignalSlow()
    {
        // Only the publisher that clears the flag pays for the lock; the others see 0 and move on.
        if (Interlocked.Exchange(ref _sleeping, 0) != 0)
        {
            lock (_gate)
            {
                Monitor.PulseAll(_gate);
            }
        }
    }
}
