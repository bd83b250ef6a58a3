using System.Runtime.CompilerServices;
using FastBroker.Ring.Internal;

namespace FastBroker.Ring;

/// <summary>
/// A pull-style consumer of a <see cref="ValueRingBuffer{T}"/> for code that drives its own loop (an I/O loop, a
/// game tick): each <see cref="Poll{THandler}(ref THandler)"/> hands the readable events to a handler by reference and returns
/// without ever waiting. Create with <see cref="ValueRingBuffer{T}.NewPoller"/>, which gates the ring on it.
/// </summary>
/// <remarks>Single-threaded: one thread polls a given poller.</remarks>
public sealed class ValueEventPoller<T>
    where T : struct
{
    private readonly RingEntries<T> _entries;
    private readonly Sequencer _sequencer;
    private readonly SequenceBarrier _barrier;
    private readonly IWaitStrategy _waitStrategy;
    private readonly bool _signal;

    internal ValueEventPoller(ValueRingBuffer<T> ring, Sequence[] gatingSequences)
    {
        _entries = ring.Entries;
        _sequencer = ring.Sequencer;
        _barrier = ring.NewBarrier(gatingSequences ?? []);
        _waitStrategy = ring.WaitStrategy;
        _signal = _waitStrategy.IsBlockingStrategy;
    }

    /// <summary>The last sequence handled; gate producers or later stages on it.</summary>
    public Sequence Sequence { get; } = new();

    /// <summary>
    /// Hands every readable event to <paramref name="handler"/> until it returns false or none are left. An exception
    /// from the handler propagates; the events before it count as handled.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public PollState Poll<THandler>(ref THandler handler)
        where THandler : IValueEventPollHandler<T>
    {
        var current = Sequence.Value;
        var next = current + 1;
        var available = _barrier.GetAvailable(next);
        if (available >= next)
        {
            var processed = current;
            try
            {
                bool more;
                do
                {
                    more = handler.OnEvent(ref _entries[next], next, next == available);
                    processed = next;
                    next++;
                }
                while (more && next <= available);
            }
            finally
            {
                Sequence.SetValue(processed);
                if (_signal)
                {
                    _waitStrategy.SignalAllWhenBlocking();
                }
            }

            return PollState.Processing;
        }

        return _sequencer.Cursor >= next ? PollState.Gating : PollState.Idle;
    }
}
