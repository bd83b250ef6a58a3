using System.Globalization;
using FastBroker.Replication;
using FastBroker.Replication.Internal;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests;

/// <summary>
/// The clock a primary measures its witness lease with: <c>CLOCK_BOOTTIME</c> on Linux, which goes on while the host is
/// suspended, as the witness's clock (on another host) does; <c>CLOCK_MONOTONIC</c> (<see cref="System.Diagnostics.Stopwatch"/>)
/// stops, and a primary suspended past its lease resumed believing in it for the whole suspension.
/// </summary>
/// <remarks>
/// A suspension cannot be made on a test machine. What can be checked: the keeper's lease end is a timestamp of the
/// kernel's boot-time clock, read here from <c>/proc/uptime</c> (the kernel's CLOCK_BOOTTIME, in hundredths). On a
/// host never suspended CLOCK_MONOTONIC equals it to a microsecond, so these tests tell the two apart only where they
/// differ: on a host that was suspended once, or in a Linux time namespace whose boot-time offset stands for one
/// (<c>unshare --time --boottime 100000 --fork dotnet test … --filter LeaseClockTests</c>: with a Stopwatch-measured lease
/// the second test fails there by 100000 s).
/// </remarks>
public sealed class LeaseClockTests
{
    [Fact]
    public async Task The_lease_clock_is_CLOCK_BOOTTIME_on_Linux_and_advances_with_the_kernels_boot_time()
    {
        Assert.Equal(OperatingSystem.IsLinux() ? "CLOCK_BOOTTIME" : "Stopwatch", LeaseClock.Source);
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        Assert.Equal(1_000_000_000, LeaseClock.Frequency);
        AssertBootTime(LeaseClock.GetTimestamp);
        var start = LeaseClock.GetTimestamp();
        await Eventually.TrueAsync(() => LeaseClock.GetTimestamp() - start >= LeaseClock.Frequency / 50, "the lease clock advances 20 ms");
    }

    [Fact]
    public async Task The_lease_keeper_measures_its_lease_on_the_boot_time_clock()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        await using var f = await WitnessFixture.StartAsync();
        var ttl = TimeSpan.FromSeconds(8); // under the witness's MaxTtl (10 s): granted as asked
        var uptime = Uptime();
        var keeper = await LeaseKeeper.TryStartAsync(f.Client(), "node-a", 0, ttl);
        Assert.NotNull(keeper);
        await using (keeper)
        {
            // The lease ends within the usable part of the TTL (90 %) from when it was asked for, on the boot-time clock.
            var endsAt = keeper.ValidUntil / (double)LeaseClock.Frequency;
            var usable = ttl.TotalSeconds * (1 - LeaseKeeper.SafetyFraction);
            Assert.InRange(endsAt, uptime + usable - 0.011, Uptime() + usable + 0.011);
            Assert.True(keeper.IsValid);
        }
    }

    /// <summary>A read of <paramref name="clock"/> (nanoseconds) bracketing a read of /proc/uptime agrees with it.</summary>
    private static void AssertBootTime(Func<long> clock)
    {
        var before = clock() / 1e9;
        var uptime = Uptime();
        var after = clock() / 1e9;

        // /proc/uptime is truncated to hundredths.
        Assert.InRange(uptime, before - 0.011, after + 0.001);
    }

    /// <summary>The kernel's CLOCK_BOOTTIME, in seconds (hundredths): the first field of /proc/uptime.</summary>
    private static double Uptime() => double.Parse(File.ReadAllText("/proc/uptime").Split(' ')[0], CultureInfo.InvariantCulture);
}
