using System.Runtime.CompilerServices;
using FastBroker.Ring.Internal;

namespace FastBroker.Ring;

/// <summary>
/// What a consumer waits on: the ring's cursor, or the sequences of the consumers it depends on (a stage of
/// a consumer graph), through the ring's wait strategy. Alerting it makes waits return
/// <see cref="WaitResult.Alerted"/> so its consumer can halt.
/// </summary>
/// <remarks>
/// One barrier per consumer; the consumer calls <see cref="WaitFor"/> once per batch, not per event. The fast
/// path is an alert check and one acquire read (or a minimum over a few) before any call to the wait strategy.
/// </remarks>
public sealed class SequenceBarrier
{
    private readonly Sequencer _sequencer;
    private readonly MultiProducerSequencer? _multi;
    private readonly IWaitStrategy _waitStrategy;
    private readonly Sequence _cursor;
    private readonly Sequence _dependent;
    private readonly Sequence[]? _dependents;
    private volatile bool _alerted;

    internal SequenceBarrier(Sequencer sequencer, Sequence[] dependentSequences)
    {
        _sequencer = sequencer;
        _waitStrategy = sequencer.WaitStrategy;
        _cursor = sequencer.CursorSequence;
        dependentSequences ??= [];

        // Consumers only ever advance over published slots, so the gap scan of the availability buffer is
        // needed only when this barrier reads the multi-producer claim cursor directly.
        _multi = dependentSequences.Length == 0 ? sequencer as MultiProducerSequencer : null;
        _dependent = dependentSequences.Length == 0 ? _cursor : dependentSequences[0];
        _dependents = dependentSequences.Length > 1 ? (Sequence[])dependentSequences.Clone() : null;
    }

    /// <summary>The value this barrier's consumer may read up to (before the multi-producer gap scan): the cursor or the minimum of the dependent sequences.</summary>
    public long DependentValue
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => _dependents is null ? _dependent.Value : SequenceGroups.GetMinimumSequence(_dependents);
    }

    /// <summary>The ring's cursor (see <see cref="Sequencer.Cursor"/>).</summary>
    public long Cursor => _cursor.Value;

    /// <summary>True once <see cref="Alert"/> was called and until <see cref="ClearAlert"/>.</summary>
    public bool IsAlerted => _alerted;

    /// <summary>The ring's wait strategy.</summary>
    public IWaitStrategy WaitStrategy => _waitStrategy;

    internal Sequencer Sequencer => _sequencer;

    /// <summary>
    /// Waits until <paramref name="sequence"/> is readable and returns the highest readable sequence, which may be
    /// well beyond it (the whole batch). May return less than <paramref name="sequence"/> when a multi-producer
    /// slot is claimed but not yet published: call again.
    /// </summary>
    /// <returns>The highest readable sequence, or <see cref="WaitResult.Alerted"/> / <see cref="WaitResult.TimedOut"/>.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public long WaitFor(long sequence)
    {
        if (_alerted)
        {
            return WaitResult.Alerted;
        }

        var available = DependentValue;
        if (available < sequence)
        {
            available = _waitStrategy.WaitFor(sequence, this);
            if (available < sequence)
            {
                return available;
            }
        }

        return _multi is null ? available : _multi.GetHighestPublishedSequence(sequence, available);
    }

    /// <summary>The highest readable sequence right now, without waiting or checking the alert (below <paramref name="sequence"/> if none).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public long GetAvailable(long sequence)
    {
        var available = DependentValue;
        if (available < sequence)
        {
            return available;
        }

        return _multi is null ? available : _multi.GetHighestPublishedSequence(sequence, available);
    }

    /// <summary>Makes current and future waits return <see cref="WaitResult.Alerted"/> and wakes blocked waiters.</summary>
    public void Alert()
    {
        _alerted = true;
        _waitStrategy.SignalAllWhenBlocking();
    }

    /// <summary>Clears the alert (a processor does this when it starts running).</summary>
    public void ClearAlert() => _alerted = false;
}
