using System.Runtime.CompilerServices;
using FastBroker.Ring.Internal;

namespace FastBroker.Ring;

/// <summary>
/// A pre-allocated ring of struct entries stored inline in one array and handed out as <c>ref T</c>: no
/// object per entry, no pointer chase on the consumer side, and sequential slots in sequential memory.
/// </summary>
/// <typeparam name="T">Entry type, written in place through the <c>ref</c>.</typeparam>
/// <remarks>The entries array carries at least 128 bytes of unused slots at each end against false sharing with neighbouring heap objects.</remarks>
public sealed class ValueRingBuffer<T> : RingBufferBase
    where T : struct
{
    private readonly T[] _entries;
    private readonly int _pad;

    /// <summary>Creates a ring of <paramref name="bufferSize"/> struct entries.</summary>
    /// <param name="bufferSize">Slot count, a power of two.</param>
    /// <param name="producerType">Single or multiple publishing threads.</param>
    /// <param name="waitStrategy">How consumers wait; default <see cref="HybridWaitStrategy"/> (no CPU when idle).</param>
    /// <param name="factory">Initial value of each slot (for entries that carry pre-allocated buffers); default <c>default(T)</c>.</param>
    public ValueRingBuffer(int bufferSize, ProducerType producerType = ProducerType.Single, IWaitStrategy? waitStrategy = null, Func<T>? factory = null)
        : base(bufferSize, producerType, waitStrategy)
    {
        _pad = UnsafeAccess.PaddingElements<T>();
        _entries = new T[bufferSize + (2 * _pad)];
        if (factory is not null)
        {
            for (var i = 0; i < bufferSize; i++)
            {
                _entries[_pad + i] = factory();
            }
        }
    }

    /// <summary>A single-producer ring.</summary>
    public static ValueRingBuffer<T> CreateSingleProducer(int bufferSize, IWaitStrategy? waitStrategy = null)
        => new(bufferSize, ProducerType.Single, waitStrategy);

    /// <summary>A multi-producer ring.</summary>
    public static ValueRingBuffer<T> CreateMultiProducer(int bufferSize, IWaitStrategy? waitStrategy = null)
        => new(bufferSize, ProducerType.Multi, waitStrategy);

    /// <summary>The slot for <paramref name="sequence"/>, by reference.</summary>
    public ref T this[long sequence]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ref UnsafeAccess.ElementAt(_entries, _pad + (nint)(sequence & _indexMask));
    }

    internal RingEntries<T> Entries => new(_entries, _indexMask, _pad);

    /// <summary>Claims the next slot and returns a scope that publishes it when disposed.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public UnpublishedValueEventScope<T> PublishEvent() => new(this, Next());

    /// <summary>Like <see cref="PublishEvent"/> but returns false instead of waiting when the ring is full.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryPublishEvent(out UnpublishedValueEventScope<T> scope)
    {
        if (TryNext(out var sequence))
        {
            scope = new UnpublishedValueEventScope<T>(this, sequence);
            return true;
        }

        scope = default;
        return false;
    }

    /// <summary>A pull-style consumer that reads after <paramref name="gatingSequences"/> (or the cursor) and gates this ring.</summary>
    public ValueEventPoller<T> NewPoller(params Sequence[] gatingSequences)
    {
        var poller = new ValueEventPoller<T>(this, gatingSequences);
        AddGatingSequences(poller.Sequence);
        return poller;
    }
}
