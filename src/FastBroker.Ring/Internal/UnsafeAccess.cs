using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace FastBroker.Ring.Internal;

/// <summary>
/// The ring's only unchecked memory access: array elements by index with no bounds or covariance check.
/// Callers guarantee the index is in range (it is always <c>pad + (sequence &amp; mask)</c> into an array of
/// <c>size + 2 * pad</c> elements).
/// </summary>
internal static class UnsafeAccess
{
    /// <summary>Element <paramref name="index"/> of <paramref name="array"/>, unchecked.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ref T ElementAt<T>(T[] array, nint index)
        => ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(array), index);

    /// <summary>Array padding in elements so that at least 128 bytes sit before the first and after the last slot.</summary>
    public static int PaddingElements<T>()
    {
        // Unsafe.SizeOf of a reference type is the size of a reference, which is what the array holds.
        var size = Unsafe.SizeOf<T>();
        return (Sequence.PaddingBytes + size - 1) / size;
    }
}
