using System.Diagnostics;
using System.Runtime.InteropServices;

namespace FastBroker.Replication.Internal;

/// <summary>
/// The clock a primary measures its witness lease with (<see cref="LeaseKeeper"/>): <c>CLOCK_BOOTTIME</c> on Linux,
/// <see cref="Stopwatch"/> elsewhere.
/// </summary>
/// <remarks>
/// <see cref="Stopwatch"/> is <c>CLOCK_MONOTONIC</c> on Linux, which stops while the host is suspended (a laptop's lid, a
/// VM suspended to disk, <c>systemctl suspend</c>); the witness's clock, on another host, does not. A primary suspended
/// past its lease would resume believing in it for the whole suspension, confirming as primary while the witness has
/// granted the lease to its standby. <c>CLOCK_BOOTTIME</c> is the same clock but counts the suspension, so the lease
/// keeper sees the lease run out at once on resume. Read with <c>clock_gettime</c> (the vDSO, no system call on current
/// kernels) through a source-generated P/Invoke, so it works under native AOT. A kernel without it (before 2.6.39) is
/// found by one probe at start and falls back to <see cref="Stopwatch"/>; no read mixes the two.
/// </remarks>
internal static partial class LeaseClock
{
    private const int ClockBootTime = 7; // CLOCK_BOOTTIME, <linux/time.h>
    private const long NanosecondsPerSecond = 1_000_000_000;

    private static readonly bool s_bootTime = OperatingSystem.IsLinux() && Probe();

    /// <summary>Ticks per second of <see cref="GetTimestamp"/>.</summary>
    public static readonly long Frequency = s_bootTime ? NanosecondsPerSecond : Stopwatch.Frequency;

    /// <summary>The clock read: <c>CLOCK_BOOTTIME</c> or <c>Stopwatch</c> (for logs and tests).</summary>
    public static string Source => s_bootTime ? "CLOCK_BOOTTIME" : "Stopwatch";

    /// <summary>The current time in <see cref="Frequency"/> ticks, from an arbitrary origin. Allocation-free, any thread.</summary>
    public static long GetTimestamp()
    {
        if (s_bootTime)
        {
            _ = ClockGetTime(ClockBootTime, out var now); // cannot fail once the probe succeeded: a valid id and address
            return (now.Seconds * NanosecondsPerSecond) + now.Nanoseconds;
        }

        return Stopwatch.GetTimestamp();
    }

    /// <summary><paramref name="span"/> in <see cref="Frequency"/> ticks.</summary>
    public static long ToTicks(TimeSpan span) => (long)(span.TotalSeconds * Frequency);

    private static bool Probe()
    {
        try
        {
            return ClockGetTime(ClockBootTime, out _) == 0;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    // Short, never blocks, no callbacks: the GC transition would cost more than the read.
    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    [SuppressGCTransition]
    private static partial int ClockGetTime(int clockId, out Timespec time);

    /// <summary><c>struct timespec</c>: <c>time_t</c> and <c>long</c>, each the size of a pointer on Linux.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public nint Seconds;
        public nint Nanoseconds;
    }
}
