using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace FastBroker.Ring.Tests;

public class SequenceLayoutTests
{
    // Object header (sync block) + method table pointer precede the first field on 64-bit CoreCLR.
    private static readonly int s_headerBytes = 2 * IntPtr.Size;

    [Fact]
    public void Value_sits_at_least_a_cache_line_from_the_start_of_the_object()
    {
        var sequence = new Sequence();
        var offsetInFields = Unsafe.ByteOffset(ref RawData(sequence), ref Unsafe.As<long, byte>(ref sequence.UnsafeValueRef));

        Assert.True(offsetInFields >= 56, $"value is only {offsetInFields} bytes into the field block");
        Assert.Equal(Sequence.PaddingBytes, (int)offsetInFields);
        Assert.Equal(Sequence.PaddingBytes, (int)Marshal.OffsetOf<Sequence>("_value"));
    }

    [Fact]
    public void Value_is_followed_by_at_least_a_cache_line_of_padding()
    {
        var fieldBlock = Marshal.SizeOf<Sequence>();
        var after = fieldBlock - Sequence.PaddingBytes - sizeof(long);
        Assert.True(after >= 56, $"only {after} bytes after the value");

        // The managed size really is that big: measure what allocating sequences costs.
        _ = new Sequence();
        const int count = 1000;
        var keep = new Sequence[count];
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < count; i++)
        {
            keep[i] = new Sequence();
        }

        var perObject = (GC.GetAllocatedBytesForCurrentThread() - before) / count;
        GC.KeepAlive(keep);
        Assert.True(perObject >= s_headerBytes + Sequence.PaddingBytes + sizeof(long) + 56, $"a Sequence occupies only {perObject} bytes");
    }

    [Fact]
    public void Two_sequences_allocated_back_to_back_do_not_share_a_cache_line()
    {
        var a = new Sequence();
        var b = new Sequence();
        unsafe
        {
            var pa = (long)Unsafe.AsPointer(ref a.UnsafeValueRef);
            var pb = (long)Unsafe.AsPointer(ref b.UnsafeValueRef);
            Assert.True(Math.Abs(pa - pb) >= 128, $"values {Math.Abs(pa - pb)} bytes apart");
        }

        GC.KeepAlive(a);
        GC.KeepAlive(b);
    }

    [Fact]
    public void Ring_entries_are_padded_at_both_ends_of_the_array()
    {
        var value = new ValueRingBuffer<LongValue>(8);
        var pad = Internal.UnsafeAccess.PaddingElements<LongValue>();
        Assert.True(pad * Unsafe.SizeOf<LongValue>() >= 128);

        var classPad = Internal.UnsafeAccess.PaddingElements<LongEvent>();
        Assert.True(classPad * IntPtr.Size >= 128);

        // Slot 0 and slot 7 are distinct, in range, and the ring wraps.
        value[0].Value = 1;
        value[7].Value = 7;
        Assert.Equal(1, value[8].Value);
        Assert.Equal(7, value[15].Value);
    }

    [Fact]
    public void Memory_ordering_primitives_behave()
    {
        var s = new Sequence(5);
        Assert.Equal(5, s.Value);
        s.SetValue(6);
        s.SetValueVolatile(7);
        Assert.True(s.CompareAndSet(7, 9));
        Assert.False(s.CompareAndSet(7, 10));
        Assert.Equal(10, s.IncrementAndGet());
        Assert.Equal(15, s.AddAndGet(5));
        Assert.Equal(Sequence.InitialValue, new Sequence().Value);
    }

    private static ref byte RawData(object o) => ref Unsafe.As<RawObject>(o).FirstByte;

    private sealed class RawObject
    {
        public byte FirstByte;
    }
}
