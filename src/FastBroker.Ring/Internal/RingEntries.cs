using System.Runtime.CompilerServices;

namespace FastBroker.Ring.Internal;

/// <summary>How a processor reaches an entry by sequence: a <c>ref</c> to a slot, class or struct.</summary>
internal interface IRefDataProvider<T>
{
    /// <summary>The slot for <paramref name="sequence"/>.</summary>
    ref T this[long sequence] { get; }
}

/// <summary>
/// The entries array of either ring flavour as a struct, so that a processor holds the array and mask inline
/// and indexing is <c>and</c> + <c>add</c> + load with no call, bounds check or covariance check.
/// </summary>
internal readonly struct RingEntries<T> : IRefDataProvider<T>
{
    private readonly T[] _entries;
    private readonly long _mask;
    private readonly int _pad;

    public RingEntries(T[] entries, long mask, int pad)
    {
        _entries = entries;
        _mask = mask;
        _pad = pad;
    }

    public ref T this[long sequence]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ref UnsafeAccess.ElementAt(_entries, _pad + (nint)(sequence & _mask));
    }
}
