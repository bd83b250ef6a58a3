using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace FastBroker.Ring;

/// <summary>
/// A 64-bit sequence counter isolated on its own cache lines: the producer cursor, a consumer's position,
/// a worker pool's claim counter. Initial value is <see cref="InitialValue"/> (-1: nothing published).
/// </summary>
/// <remarks>
/// <para><b>Layout.</b> The value sits <see cref="PaddingBytes"/> (128) bytes after the start of the field
/// block and is followed by another 128 bytes, so no other object (or another field of this one) can share
/// its 64-byte cache line or the adjacent line the L2 spatial prefetcher pulls in with it. Checked by
/// <c>SequenceLayoutTests</c>.</para>
/// <para><b>Memory ordering.</b> <see cref="Value"/> is an acquire read (<c>Volatile.Read</c>):
/// reads of ring entries made after it cannot move before it. <see cref="SetValue"/> is a release write:
/// writes to an entry made before it are visible to any thread that reads the new value. That pair is all a
/// publish/consume hand-off needs and costs a plain <c>mov</c> on x64. <see cref="SetValueVolatile"/> adds a
/// full fence (store-load ordering), needed only where a thread writes one sequence and then reads another
/// that a second thread writes in the opposite order (Dekker-style). <see cref="CompareAndSet"/>,
/// <see cref="IncrementAndGet"/> and <see cref="AddAndGet"/> are full fences.</para>
/// </remarks>
[StructLayout(LayoutKind.Explicit)]
public sealed class Sequence
{
    /// <summary>The value of a sequence nothing has been published to or processed from.</summary>
    public const long InitialValue = -1;

    /// <summary>Bytes of padding on each side of the value: two 64-byte cache lines (adjacent-line prefetch).</summary>
    internal const int PaddingBytes = 128;

    [FieldOffset(PaddingBytes)]
    private long _value;

    // The runtime ignores StructLayout.Size for classes, so the trailing padding needs a field of its own:
    // its end is 128 bytes after the end of the value.
#pragma warning disable CS0169, IDE0051 // never read: it only reserves space
    [FieldOffset((2 * PaddingBytes) + sizeof(long) - sizeof(long))]
    private readonly long _trailingPadding;
#pragma warning restore CS0169, IDE0051

    /// <summary>Creates a sequence at <see cref="InitialValue"/>.</summary>
    public Sequence()
        : this(InitialValue)
    {
    }

    /// <summary>Creates a sequence at <paramref name="initialValue"/>.</summary>
    public Sequence(long initialValue) => _value = initialValue;

    /// <summary>The current value (acquire read).</summary>
    public long Value
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Volatile.Read(ref _value);
    }

    /// <summary>The field itself, for the layout test and for <see cref="Interlocked"/> in sibling types.</summary>
    internal ref long UnsafeValueRef => ref _value;

    /// <summary>Sets the value with release semantics (ordered store, no store-load fence).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetValue(long value) => Volatile.Write(ref _value, value);

    /// <summary>Sets the value followed by a full fence, so later reads cannot move before the store.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetValueVolatile(long value)
    {
        Volatile.Write(ref _value, value);
        Interlocked.MemoryBarrier();
    }

    /// <summary>Atomically sets the value to <paramref name="newValue"/> if it equals <paramref name="expectedValue"/>.</summary>
    /// <returns>True when the swap happened.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool CompareAndSet(long expectedValue, long newValue)
        => Interlocked.CompareExchange(ref _value, newValue, expectedValue) == expectedValue;

    /// <summary>Atomically adds one and returns the new value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public long IncrementAndGet() => Interlocked.Increment(ref _value);

    /// <summary>Atomically adds <paramref name="increment"/> and returns the new value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public long AddAndGet(long increment) => Interlocked.Add(ref _value, increment);

    /// <summary>The value, for debugging.</summary>
    public override string ToString() => Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
