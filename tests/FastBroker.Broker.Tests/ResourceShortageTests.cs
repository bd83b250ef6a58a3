using FastBroker.Storage;
using FastBroker.Testing;
using Microsoft.Win32.SafeHandles;

namespace FastBroker.BrokerTests;

/// <summary>
/// Which I/O failures are a shortage the system gets over by itself (ResourceExhausted, retried) and which are about
/// the file as it is (StorageError, until an operator acts). .NET gives an IOException the Linux errno as its HResult.
/// </summary>
public class ResourceShortageTests
{
    [Theory]
    [InlineData(24, "out of descriptors")] // EMFILE
    [InlineData(23, "out of descriptors")] // ENFILE
    [InlineData(12, "out of memory")] // ENOMEM
    [InlineData(28, "out of disk space")] // ENOSPC
    [InlineData(122, "out of disk space")] // EDQUOT
    [InlineData(5, "an I/O error of the device")] // EIO
    public void An_IOException_with_a_shortage_errno_is_a_shortage(int errno, string what)
    {
        Assert.Equal(what, ResourceShortage.Describe(new IOException("x", errno)));
        Assert.Equal(what, ResourceShortage.Describe(new InvalidOperationException("wrapped", new IOException("x", errno))));
    }

    [Fact]
    public void Damage_permissions_and_missing_files_are_not_shortages()
    {
        Assert.Null(ResourceShortage.Describe(new InvalidDataException("not a position file")));
        Assert.Null(ResourceShortage.Describe(new UnauthorizedAccessException("EACCES")));
        Assert.Null(ResourceShortage.Describe(new FileNotFoundException("ENOENT")));
        Assert.Null(ResourceShortage.Describe(new IOException("EROFS", 30)));
        Assert.Equal("out of memory", ResourceShortage.Describe(new OutOfMemoryException()));
    }

    [Fact]
    public void A_descriptor_in_the_reserve_is_refused_as_out_of_descriptors_and_a_low_one_is_not()
    {
        Assert.True(OperatingSystem.IsLinux(), "RLIMIT_NOFILE: Linux only, like CI");
        using var dir = new TempDirectory("fastbroker-shortage");
        var path = Path.Combine(dir.Path, "x");
        using (var low = File.OpenHandle(path, FileMode.Create, FileAccess.ReadWrite))
        {
            ResourceShortage.ThrowIfInReserve(low, path);
        }

        // No process has 2^31 − 1 descriptors: that number is past any limit below RLIM_INFINITY, as one of the last 64.
        using var high = new SafeFileHandle(int.MaxValue - 1, ownsHandle: false);
        var e = Assert.Throws<IOException>(() => ResourceShortage.ThrowIfInReserve(high, path));
        Assert.Equal("out of descriptors", ResourceShortage.Describe(e));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
    }
}
