using FastBroker.Journal;
using FastBroker.Storage;
using FastBroker.Testing;
using Microsoft.Win32.SafeHandles;

namespace FastBroker.BrokerTests;

/// <summary>
/// Which I/O failures are a shortage the system gets over by itself (ResourceExhausted, retried) and which are about
/// the file or the device as it is (StorageError, until an operator acts). .NET gives an IOException the Linux errno as
/// its HResult; the journal carries one inside its JournalException.
/// </summary>
public class ResourceShortageTests
{
    [Theory]
    [InlineData(24, "out of descriptors")] // EMFILE
    [InlineData(23, "out of descriptors")] // ENFILE
    [InlineData(12, "out of memory")] // ENOMEM
    [InlineData(28, "out of disk space")] // ENOSPC
    [InlineData(122, "out of disk space")] // EDQUOT
    [InlineData(11, "a lock held elsewhere")] // EAGAIN
    public void An_IOException_with_a_shortage_errno_is_a_shortage(int errno, string what)
    {
        Assert.Equal(what, ResourceShortage.Describe(new IOException("x", errno)));
        Assert.Equal(what, ResourceShortage.Describe(new InvalidOperationException("wrapped", new IOException("x", errno))));
        Assert.Equal(what, ResourceShortage.Describe(new JournalException(JournalErrorCode.IoError, "segment cannot be created", new IOException("x", errno))));
        Assert.True(ResourceShortage.Is(new IOException("x", errno)));
    }

    /// <summary>
    /// EIO: the device failed the I/O. Nothing brings that back by itself (a bad sector, a failing disk, a write-back
    /// error an fsync reports once), so it is not retried as a shortage: bare, wrapped, or inside the journal's exception.
    /// </summary>
    [Fact]
    public void An_IO_error_of_the_device_is_not_a_shortage()
    {
        const int eio = 5;
        Assert.Null(ResourceShortage.Describe(new IOException("Input/output error", eio)));
        Assert.Null(ResourceShortage.Describe(new InvalidOperationException("wrapped", new IOException("Input/output error", eio))));
        Assert.Null(ResourceShortage.Describe(new JournalException(JournalErrorCode.IoError, "segment cannot be created", new IOException("Input/output error", eio))));
        Assert.False(ResourceShortage.Is(new IOException("Input/output error", eio)));
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
