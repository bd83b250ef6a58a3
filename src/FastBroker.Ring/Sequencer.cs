using System.Numerics;
using System.Runtime.CompilerServices;
using FastBroker.Ring.Internal;

namespace FastBroker.Ring;

/// <summary>
/// Hands out ring slots to producers (<see cref="Next()"/>, <see cref="TryNext(out long)"/>), makes them visible
/// to consumers (<see cref="Publish(long)"/>), and keeps producers from lapping the slowest gating consumer.
/// The two implementations are <see cref="SingleProducerSequencer"/> and <see cref="MultiProducerSequencer"/>.
/// </summary>
/// <remarks>
/// A claim is always followed by a publish of the same slots; a claimed slot that is never published stalls
/// every consumer behind it. Claims block (spin, then yield, then sleep 1 ms) while the ring is full;
/// <see cref="TryNext(out long)"/> returns false instead, which is the backpressure signal.
/// </remarks>
public abstract class Sequencer
{
    private protected readonly int _bufferSize;
    private protected readonly Sequence _cursor = new();
    private protected readonly IWaitStrategy _waitStrategy;
    private protected readonly bool _signalOnPublish;
    private protected Sequence[] _gatingSequences = [];

    private protected Sequencer(int bufferSize, IWaitStrategy waitStrategy)
    {
        if (bufferSize < 1 || !BitOperations.IsPow2(bufferSize))
        {
            ThrowHelper.ThrowBufferSizeInvalid(bufferSize);
        }

        ArgumentNullException.ThrowIfNull(waitStrategy);
        _bufferSize = bufferSize;
        _waitStrategy = waitStrategy;
        _signalOnPublish = waitStrategy.IsBlockingStrategy;
    }

    /// <summary>Number of slots in the ring (a power of two).</summary>
    public int BufferSize => _bufferSize;

    /// <summary>
    /// The cursor: for a single producer the highest published sequence; for multiple producers the highest
    /// <em>claimed</em> sequence (use <see cref="GetHighestPublishedSequence"/> to find what is readable).
    /// </summary>
    public long Cursor => _cursor.Value;

    /// <summary>The wait strategy shared by this sequencer's barriers.</summary>
    public IWaitStrategy WaitStrategy => _waitStrategy;

    internal Sequence CursorSequence => _cursor;

    /// <summary>Claims the next slot, waiting while the ring is full.</summary>
    /// <returns>The claimed sequence.</returns>
    public long Next() => Next(1);

    /// <summary>Claims the next <paramref name="n"/> slots, waiting while the ring is full.</summary>
    /// <returns>The highest claimed sequence; the batch is <c>[result - n + 1, result]</c>.</returns>
    public abstract long Next(int n);

    /// <summary>Claims the next slot if the ring has room.</summary>
    /// <returns>False when the ring is full (backpressure).</returns>
    public bool TryNext(out long sequence) => TryNext(1, out sequence);

    /// <summary>Claims the next <paramref name="n"/> slots if the ring has room for all of them.</summary>
    /// <returns>False when it does not (backpressure); <paramref name="sequence"/> is then undefined.</returns>
    public abstract bool TryNext(int n, out long sequence);

    /// <summary>Makes a claimed slot visible to consumers.</summary>
    public abstract void Publish(long sequence);

    /// <summary>Makes the claimed range <c>[lo, hi]</c> visible to consumers.</summary>
    public abstract void Publish(long lo, long hi);

    /// <summary>True when <paramref name="sequence"/> has been published (and not yet overwritten).</summary>
    public abstract bool IsAvailable(long sequence);

    /// <summary>
    /// True once <paramref name="sequence"/> (a sequence already claimed) has been published, and from then on: unlike
    /// <see cref="IsAvailable"/>, it stays true after the slot is claimed and published again for a later sequence.
    /// </summary>
    public abstract bool HasPublished(long sequence);

    /// <summary>
    /// The highest sequence in <c>[nextSequence, availableSequence]</c> such that every slot from
    /// <paramref name="nextSequence"/> up to it is published; <c>nextSequence - 1</c> if none is.
    /// </summary>
    public abstract long GetHighestPublishedSequence(long nextSequence, long availableSequence);

    /// <summary>Slots that can be claimed right now without waiting.</summary>
    public abstract long RemainingCapacity();

    /// <summary>True when <paramref name="requiredCapacity"/> slots can be claimed right now.</summary>
    public abstract bool HasAvailableCapacity(int requiredCapacity);

    /// <summary>
    /// Adds consumer sequences that producers must not lap. Each is first set to the current <see cref="Cursor"/>, so a
    /// consumer added while running starts after it: for a single producer after the last publish, for multiple
    /// producers after the last claim (slots claimed before the add and published after it are not seen).
    /// </summary>
    public void AddGatingSequences(params Sequence[] gatingSequences)
        => SequenceGroups.Add(ref _gatingSequences, _cursor, gatingSequences);

    internal void AddGatingSequencesAsIs(Sequence[] gatingSequences)
        => SequenceGroups.AddAsIs(ref _gatingSequences, gatingSequences);

    /// <summary>Removes a gating sequence; true if it was present.</summary>
    public bool RemoveGatingSequence(Sequence sequence) => SequenceGroups.Remove(ref _gatingSequences, sequence);

    /// <summary>The lowest gating sequence, or the cursor when there are none.</summary>
    public long GetMinimumSequence() => SequenceGroups.GetMinimumSequence(Volatile.Read(ref _gatingSequences), _cursor.Value);

    /// <summary>A barrier for a consumer that reads published slots after every sequence in <paramref name="sequencesToTrack"/>.</summary>
    public SequenceBarrier NewBarrier(params Sequence[] sequencesToTrack) => new(this, sequencesToTrack);

    /// <summary>Waits while the ring is full: spin, then yield, then 1 ms sleeps (a halted consumer must not cost a core).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private protected static void WaitForSpace(ref int counter)
    {
        if (counter < 64)
        {
            Thread.SpinWait(4);
        }
        else if (counter < 4096)
        {
            Thread.Yield();
        }
        else
        {
            Thread.Sleep(1);
        }

        counter++;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private protected void SignalIfBlocking()
    {
        if (_signalOnPublish)
        {
            _waitStrategy.SignalAllWhenBlocking();
        }
    }
}
