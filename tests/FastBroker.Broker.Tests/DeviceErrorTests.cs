using System.Text;

namespace FastBroker.BrokerTests;

/// <summary>
/// A state file that the device cannot read (EIO) is a storage error, refused for good with StorageError naming the
/// file, not a shortage answered ResourceExhausted (which clients retry for ever). A real EIO: the file is a symbolic
/// link to <c>/proc/self/mem</c>, which opens, and whose read at offset 0 (an address no process maps) fails with EIO,
/// as a bad sector's would. Nothing is written through it: the header read refuses it before anything is mapped.
/// </summary>
public class DeviceErrorTests
{
    [Theory]
    [InlineData("group state file")]
    [InlineData("position file")]
    public async Task A_state_file_the_device_cannot_read_is_refused_as_a_storage_error_naming_it(string kind)
    {
        Assert.True(OperatingSystem.IsLinux(), "/proc/self/mem: Linux only, like CI");
        await using var f = await BrokerFixture.StartAsync();
        await f.Broker.PublishAsync("jobs", Encoding.UTF8.GetBytes("j0"));
        var path = kind == "group state file"
            ? Path.Combine(f.DataDirectory, "topics", "jobs", "groups", "workers.state")
            : Path.Combine(f.DataDirectory, "subscriptions", "auditor.pos");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.CreateSymbolicLink(path, "/proc/self/mem");
        var eio = Assert.Throws<IOException>(() =>
        {
            using var mem = File.OpenRead(path);
            _ = mem.Read(new byte[8]);
        });
        Assert.Equal(5, eio.HResult); // the device's error, for real

        var e = Assert.Throws<BrokerException>(() => Join(f.Broker, kind).Dispose());
        Assert.Equal(BrokerErrorCode.StorageError, e.Code);
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.Contains(eio.Message.Split(" : ")[0], e.Message, StringComparison.Ordinal); // "Input/output error"

        // The operator acts (here: removes the link): the same call succeeds, and the broker served on meanwhile.
        Assert.Equal("/proc/self/mem", new FileInfo(path).LinkTarget);
        File.Delete(path);
        using var ok = Join(f.Broker, kind);
        Assert.True(File.Exists(path) && new FileInfo(path).LinkTarget is null, $"{path} was not created as a file of its own");
    }

    private static IDisposable Join(Broker broker, string kind) => kind == "group state file"
        ? broker.JoinGroup("jobs", "workers")
        : broker.Subscribe("jobs", new SubscriptionOptions { DurableName = "auditor", Start = StartPosition.Committed });
}
