using System.Runtime.CompilerServices;
using FastBroker.Ring.Internal;

namespace FastBroker.Ring;

/// <summary>
/// A pre-allocated ring of class entries: every slot holds an instance made once by the factory and reused
/// for every lap, so steady-state publishing allocates nothing. Producers claim a sequence, fill
/// <c>ring[sequence]</c>, and publish it.
/// </summary>
/// <typeparam name="T">Entry type; mutable, reused.</typeparam>
/// <remarks>The entries array carries 128 bytes of unused slots at each end so neighbouring heap objects never share its hot cache lines.</remarks>
public sealed class RingBuffer<T> : RingBufferBase
    where T : class
{
    private readonly T[] _entries;
    private readonly int _pad;

    /// <summary>Creates a ring of <paramref name="bufferSize"/> entries (a power of two) made by <paramref name="factory"/>.</summary>
    /// <param name="factory">Makes each entry once, up front.</param>
    /// <param name="bufferSize">Slot count, a power of two.</param>
    /// <param name="producerType">Single or multiple publishing threads.</param>
    /// <param name="waitStrategy">How consumers wait; default <see cref="HybridWaitStrategy"/> (no CPU when idle).</param>
    public RingBuffer(Func<T> factory, int bufferSize, ProducerType producerType = ProducerType.Single, IWaitStrategy? waitStrategy = null)
        : base(bufferSize, producerType, waitStrategy)
    {
        ArgumentNullException.ThrowIfNull(factory);
        _pad = UnsafeAccess.PaddingElements<T>();
        _entries = new T[bufferSize + (2 * _pad)];
        for (var i = 0; i < bufferSize; i++)
        {
            _entries[_pad + i] = factory() ?? ThrowNull();
        }
    }

    /// <summary>A single-producer ring.</summary>
    public static RingBuffer<T> CreateSingleProducer(Func<T> factory, int bufferSize, IWaitStrategy? waitStrategy = null)
        => new(factory, bufferSize, ProducerType.Single, waitStrategy);

    /// <summary>A multi-producer ring.</summary>
    public static RingBuffer<T> CreateMultiProducer(Func<T> factory, int bufferSize, IWaitStrategy? waitStrategy = null)
        => new(factory, bufferSize, ProducerType.Multi, waitStrategy);

    /// <summary>The entry for <paramref name="sequence"/> (claimed by the caller, or published and not yet passed by every consumer).</summary>
    public T this[long sequence]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => UnsafeAccess.ElementAt(_entries, _pad + (nint)(sequence & _indexMask));
    }

    internal RingEntries<T> Entries => new(_entries, _indexMask, _pad);

    /// <summary>Claims the next slot and returns a scope that publishes it when disposed: <c>using (var s = ring.PublishEvent()) s.Event().X = 1;</c></summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public UnpublishedEventScope<T> PublishEvent() => new(this, Next());

    /// <summary>Like <see cref="PublishEvent"/> but returns false instead of waiting when the ring is full.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryPublishEvent(out UnpublishedEventScope<T> scope)
    {
        if (TryNext(out var sequence))
        {
            scope = new UnpublishedEventScope<T>(this, sequence);
            return true;
        }

        scope = default;
        return false;
    }

    /// <summary>A pull-style consumer that reads after <paramref name="gatingSequences"/> (or the cursor) and gates this ring.</summary>
    public EventPoller<T> NewPoller(params Sequence[] gatingSequences)
    {
        var poller = new EventPoller<T>(this, gatingSequences);
        AddGatingSequences(poller.Sequence);
        return poller;
    }

    private static T ThrowNull()
    {
        ThrowHelper.ThrowNullEntry();
        return null;
    }
}
