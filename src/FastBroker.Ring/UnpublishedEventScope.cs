using System.Runtime.CompilerServices;

namespace FastBroker.Ring;

/// <summary>A claimed, not yet published slot of a <see cref="RingBuffer{T}"/>; disposing it publishes the slot.</summary>
public readonly struct UnpublishedEventScope<T> : IDisposable
    where T : class
{
    private readonly RingBuffer<T> _ring;
    private readonly long _sequence;

    internal UnpublishedEventScope(RingBuffer<T> ring, long sequence)
    {
        _ring = ring;
        _sequence = sequence;
    }

    /// <summary>The claimed sequence.</summary>
    public long Sequence => _sequence;

    /// <summary>The entry to fill.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public T Event() => _ring[_sequence];

    /// <summary>Publishes the slot.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Dispose() => _ring.Publish(_sequence);
}
