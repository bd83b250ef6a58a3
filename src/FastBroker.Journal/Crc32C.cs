using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace FastBroker.Journal;

/// <summary>
/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every journal record: the SSE4.2
/// <c>crc32</c> instruction on x64 (8 bytes per instruction), the ARMv8 CRC32C instructions on arm64, and a
/// slicing-by-8 table otherwise. System.IO.Hashing is not on the package mirror, hence this type.
/// </summary>
/// <remarks>
/// <see cref="Append"/> continues a finished checksum, so <c>Compute(a ++ b) == Append(Compute(a), b)</c>.
/// </remarks>
public static class Crc32C
{
    private const uint Polynomial = 0x82F63B78u;
    private const int LaneBytes = 128; // 3 lanes of 128 bytes: a 1 KiB record runs two interleaved blocks
    private static readonly uint[] s_table = CreateTable();
    private static readonly uint[] s_shiftLane = CreateShiftTable(LaneBytes);

    /// <summary>The CRC-32C of <paramref name="data"/> (e.g. <c>"123456789"</c> gives <c>0xE3069283</c>).</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => Append(0, data);

    /// <summary>Continues the finished checksum <paramref name="crc"/> over <paramref name="data"/>.</summary>
    public static uint Append(uint crc, ReadOnlySpan<byte> data) => ~Update(~crc, data);

    /// <summary>True when a CPU instruction computes the checksum (else the table fallback runs).</summary>
    public static bool IsHardwareAccelerated => Sse42.IsSupported || Crc32.IsSupported;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static uint Update(uint crc, ReadOnlySpan<byte> data)
    {
        if (Sse42.X64.IsSupported)
        {
            return UpdateSse42X64(crc, data);
        }

        if (Crc32.Arm64.IsSupported)
        {
            return UpdateArm64(crc, data);
        }

        return UpdateSoftware(crc, data);
    }

    private static uint UpdateSse42X64(uint crc, ReadOnlySpan<byte> data)
    {
        ref var p = ref MemoryMarshal.GetReference(data);
        var length = data.Length;
        ulong c = crc;
        var i = 0;

        // crc32 has a 3-cycle latency but a 1-cycle throughput: three independent lanes over consecutive 128-byte
        // chunks, joined with Shift (the register update is linear: crc(a ++ b) = shift(crc(a), |b|) ^ crc0(b)),
        // run a 1 KiB record about 2x faster than one dependent chain.
        for (; i + (3 * LaneBytes) <= length; i += 3 * LaneBytes)
        {
            ulong c1 = 0, c2 = 0;
            for (var k = 0; k < LaneBytes; k += 8)
            {
                c = Sse42.X64.Crc32(c, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i + k)));
                c1 = Sse42.X64.Crc32(c1, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i + LaneBytes + k)));
                c2 = Sse42.X64.Crc32(c2, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i + (2 * LaneBytes) + k)));
            }

            c = Shift((uint)c, s_shiftLane) ^ c1;
            c = Shift((uint)c, s_shiftLane) ^ c2;
        }

        // Four independent 8-byte steps per iteration keep the loop overhead off the 3-cycle crc32 latency chain.
        for (; i + 32 <= length; i += 32)
        {
            c = Sse42.X64.Crc32(c, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i)));
            c = Sse42.X64.Crc32(c, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i + 8)));
            c = Sse42.X64.Crc32(c, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i + 16)));
            c = Sse42.X64.Crc32(c, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i + 24)));
        }

        for (; i + 8 <= length; i += 8)
        {
            c = Sse42.X64.Crc32(c, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i)));
        }

        var c32 = (uint)c;
        for (; i < length; i++)
        {
            c32 = Sse42.Crc32(c32, Unsafe.Add(ref p, i));
        }

        return c32;
    }

    private static uint UpdateArm64(uint crc, ReadOnlySpan<byte> data)
    {
        ref var p = ref MemoryMarshal.GetReference(data);
        var length = data.Length;
        var c = crc;
        var i = 0;
        for (; i + 8 <= length; i += 8)
        {
            c = Crc32.Arm64.ComputeCrc32C(c, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i)));
        }

        for (; i < length; i++)
        {
            c = Crc32.ComputeCrc32C(c, Unsafe.Add(ref p, i));
        }

        return c;
    }

    /// <summary>Slicing-by-8 table implementation; public to the tests so both paths are checked on any CPU.</summary>
    internal static uint UpdateSoftware(uint crc, ReadOnlySpan<byte> data)
    {
        var t = s_table;
        var i = 0;
        for (; i + 8 <= data.Length; i += 8)
        {
            var lo = BinaryPrimitives.ReadUInt32LittleEndian(data.Slice(i)) ^ crc;
            var hi = BinaryPrimitives.ReadUInt32LittleEndian(data.Slice(i + 4));
            crc = t[(7 * 256) + (lo & 0xFF)] ^ t[(6 * 256) + ((lo >> 8) & 0xFF)] ^ t[(5 * 256) + ((lo >> 16) & 0xFF)] ^ t[(4 * 256) + (lo >> 24)]
                ^ t[(3 * 256) + (hi & 0xFF)] ^ t[(2 * 256) + ((hi >> 8) & 0xFF)] ^ t[256 + ((hi >> 16) & 0xFF)] ^ t[hi >> 24];
        }

        for (; i < data.Length; i++)
        {
            crc = t[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
        }

        return crc;
    }

    /// <summary>The register after feeding it <c>n</c> zero bytes (the table was built for one fixed n): 4 lookups.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Shift(uint crc, uint[] t) =>
        t[crc & 0xFF] ^ t[256 + ((crc >> 8) & 0xFF)] ^ t[512 + ((crc >> 16) & 0xFF)] ^ t[768 + (crc >> 24)];

    private static uint[] CreateShiftTable(int zeroBytes)
    {
        // Feeding zeros is linear in the register, so it is the XOR of its effect on each byte of the register.
        var zeros = new byte[zeroBytes];
        var table = new uint[4 * 256];
        for (var k = 0; k < 4; k++)
        {
            for (uint v = 0; v < 256; v++)
            {
                table[(k * 256) + (int)v] = UpdateSoftware(v << (8 * k), zeros);
            }
        }

        return table;
    }

    private static uint[] CreateTable()
    {
        var table = new uint[8 * 256];
        for (uint n = 0; n < 256; n++)
        {
            var c = n;
            for (var k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? (c >> 1) ^ Polynomial : c >> 1;
            }

            table[n] = c;
        }

        for (var n = 0; n < 256; n++)
        {
            var c = table[n];
            for (var s = 1; s < 8; s++)
            {
                c = table[c & 0xFF] ^ (c >> 8);
                table[(s * 256) + n] = c;
            }
        }

        return table;
    }
}
