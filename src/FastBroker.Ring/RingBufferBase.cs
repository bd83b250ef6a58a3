using System.Runtime.CompilerServices;

namespace FastBroker.Ring;

/// <summary>
/// What both ring flavours share: the sequencer and the producer-side API (claim, publish, capacity, gating).
/// <see cref="RingBuffer{T}"/> holds class entries, <see cref="ValueRingBuffer{T}"/> holds struct entries.
/// </summary>
/// <remarks>
/// Claims and publishes dispatch to the concrete sealed sequencer with a null check rather than a virtual call,
/// so the single-producer path inlines into the caller.
/// </remarks>
public abstract class RingBufferBase
{
    private protected readonly Sequencer _sequencer;
    private protected readonly SingleProducerSequencer? _single;
    private protected readonly MultiProducerSequencer? _multi;
    private protected readonly long _indexMask;

    private protected RingBufferBase(int bufferSize, ProducerType producerType, IWaitStrategy? waitStrategy)
    {
        waitStrategy ??= new HybridWaitStrategy();
        if (producerType == ProducerType.Single)
        {
            _single = new SingleProducerSequencer(bufferSize, waitStrategy);
            _sequencer = _single;
        }
        else
        {
            _multi = new MultiProducerSequencer(bufferSize, waitStrategy);
            _sequencer = _multi;
        }

        _indexMask = bufferSize - 1;
    }

    /// <summary>Number of slots (a power of two).</summary>
    public int BufferSize => _sequencer.BufferSize;

    /// <summary>Single or multi producer.</summary>
    public ProducerType ProducerType => _single is null ? ProducerType.Multi : ProducerType.Single;

    /// <summary>The cursor (see <see cref="Sequencer.Cursor"/>).</summary>
    public long Cursor => _sequencer.Cursor;

    /// <summary>The sequencer behind this ring.</summary>
    public Sequencer Sequencer => _sequencer;

    /// <summary>The wait strategy shared by the ring's barriers.</summary>
    public IWaitStrategy WaitStrategy => _sequencer.WaitStrategy;

    /// <summary>Claims the next slot, waiting while the ring is full.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public long Next() => _single is { } s ? s.Next(1) : _multi!.Next(1);

    /// <summary>Claims <paramref name="n"/> slots, waiting while the ring is full; returns the highest.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public long Next(int n) => _single is { } s ? s.Next(n) : _multi!.Next(n);

    /// <summary>Claims the next slot if there is room; false when the ring is full (backpressure).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryNext(out long sequence) => _single is { } s ? s.TryNext(1, out sequence) : _multi!.TryNext(1, out sequence);

    /// <summary>Claims <paramref name="n"/> slots if there is room for all; returns the highest in <paramref name="sequence"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryNext(int n, out long sequence) => _single is { } s ? s.TryNext(n, out sequence) : _multi!.TryNext(n, out sequence);

    /// <summary>Publishes a claimed slot.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Publish(long sequence)
    {
        if (_single is { } s)
        {
            s.Publish(sequence);
        }
        else
        {
            _multi!.Publish(sequence);
        }
    }

    /// <summary>Publishes the claimed range <c>[lo, hi]</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Publish(long lo, long hi)
    {
        if (_single is { } s)
        {
            s.Publish(hi);
        }
        else
        {
            _multi!.Publish(lo, hi);
        }
    }

    /// <summary>True when <paramref name="sequence"/> is published and not yet overwritten.</summary>
    public bool IsPublished(long sequence) => _sequencer.IsAvailable(sequence);

    /// <summary>True once <paramref name="sequence"/> (claimed) has been published, also after its slot is reused (<see cref="Sequencer.HasPublished"/>).</summary>
    public bool HasPublished(long sequence) => _sequencer.HasPublished(sequence);

    /// <summary>Slots that can be claimed right now.</summary>
    public long RemainingCapacity() => _sequencer.RemainingCapacity();

    /// <summary>True when <paramref name="requiredCapacity"/> slots can be claimed right now.</summary>
    public bool HasAvailableCapacity(int requiredCapacity) => _sequencer.HasAvailableCapacity(requiredCapacity);

    /// <summary>Adds consumer sequences the producers must not lap (set to the cursor first).</summary>
    public void AddGatingSequences(params Sequence[] gatingSequences) => _sequencer.AddGatingSequences(gatingSequences);

    /// <summary>Removes a gating sequence; true if it was present.</summary>
    public bool RemoveGatingSequence(Sequence sequence) => _sequencer.RemoveGatingSequence(sequence);

    /// <summary>The slowest gating sequence (the cursor when there are none).</summary>
    public long GetMinimumGatingSequence() => _sequencer.GetMinimumSequence();

    /// <summary>A barrier that waits for the cursor, or for every sequence in <paramref name="sequencesToTrack"/>.</summary>
    public SequenceBarrier NewBarrier(params Sequence[] sequencesToTrack) => _sequencer.NewBarrier(sequencesToTrack);
}
