using System.Runtime.CompilerServices;

namespace FastBroker.Ring;

/// <summary>A claimed, not yet published slot of a <see cref="ValueRingBuffer{T}"/>; disposing it publishes the slot.</summary>
public readonly struct UnpublishedValueEventScope<T> : IDisposable
    where T : struct
{
    private readonly ValueRingBuffer<T> _ring;
    private readonly long _sequence;

    internal UnpublishedValueEventScope(ValueRingBuffer<T> ring, long sequence)
    {
        _ring = ring;
        _sequence = sequence;
    }

    /// <summary>The claimed sequence.</summary>
    public long Sequence => _sequence;

    /// <summary>The slot to fill, by reference.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref T Event() => ref _ring[_sequence];

    /// <summary>Publishes the slot.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Dispose() => _ring.Publish(_sequence);
}
