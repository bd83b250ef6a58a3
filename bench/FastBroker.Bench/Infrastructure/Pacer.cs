using System.Diagnostics;
using System.Runtime.InteropServices;

namespace FastBroker.Bench.Infrastructure;

/// <summary>
/// Waits until a Stopwatch timestamp without burning a core: on a 2-core box a load generator that spins (or
/// yield-spins) between sends at 10k msg/s takes a whole core from the system it measures. Sleeps with
/// <c>nanosleep</c> (the thread's timer slack lowered to 1 µs) until shortly before the deadline, then yields the
/// last few microseconds. Lateness is still charged to the message (latencies are measured from the scheduled time).
/// </summary>
public static partial class Pacer
{
    private const long SpinNs = 40_000;
    private const int PrSetTimerSlack = 29;
    [ThreadStatic]
    private static bool s_slackSet;

    /// <summary>Returns once <see cref="Stopwatch.GetTimestamp"/> has reached <paramref name="deadline"/>.</summary>
    public static void WaitUntil(long deadline)
    {
        if (!s_slackSet && OperatingSystem.IsLinux())
        {
            _ = Prctl(PrSetTimerSlack, 1000, 0, 0, 0);
            s_slackSet = true;
        }

        while (true)
        {
            var remainingNs = (long)((deadline - Stopwatch.GetTimestamp()) * (1e9 / Stopwatch.Frequency));
            if (remainingNs <= 0)
            {
                return;
            }

            if (remainingNs > SpinNs && OperatingSystem.IsLinux())
            {
                var sleep = new Timespec { Seconds = 0, Nanoseconds = remainingNs - SpinNs };
                if (sleep.Nanoseconds >= 1_000_000_000)
                {
                    sleep.Seconds = sleep.Nanoseconds / 1_000_000_000;
                    sleep.Nanoseconds %= 1_000_000_000;
                }

                _ = NanoSleep(in sleep, IntPtr.Zero);
                continue;
            }

            Thread.Yield();
        }
    }

    [LibraryImport("libc", EntryPoint = "nanosleep")]
    private static partial int NanoSleep(in Timespec request, IntPtr remaining);

    [LibraryImport("libc", EntryPoint = "prctl")]
    private static partial int Prctl(int option, ulong arg2, ulong arg3, ulong arg4, ulong arg5);

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }
}
