using System.Collections.Concurrent;
using FastBroker.Client;
using FastBroker.Protocol;
using FastBroker.Testing;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

/// <summary>
/// A group state file the device cannot read (EIO) on a real server process: not a shortage that passes, so the server
/// opens and serves, and a join or a member's rejoin is refused for good with StorageError naming the file, instead of
/// ResourceExhausted, which the client would retry for ever. A real EIO: the file is replaced (server down) by a
/// symbolic link to <c>/proc/self/mem</c>, which the server opens as its own memory and whose read at offset 0 (an
/// address no process maps) fails with EIO, as a bad sector's would.
/// </summary>
public class GroupStateDeviceErrorTests
{
    private const string Topic = "device.jobs";

    private static readonly BrokerClientOptions s_options = BrokerClientOptions.Default with { ReconnectTimeout = TimeSpan.FromSeconds(120), ConnectTimeout = TimeSpan.FromSeconds(30) };

    [Fact]
    public async Task A_group_state_file_the_device_cannot_read_refuses_joins_and_rejoins_for_good_naming_it()
    {
        Assert.True(OperatingSystem.IsLinux(), "/proc/self/mem: Linux only, like CI");
        using var dir = new TempDirectory("fastbroker-group-eio");
        var state = Path.Combine(dir.Path, "topics", Topic, "groups", "workers.state");
        using var first = await HostProcess.StartAsync(dir.Path);
        var port = first.Port;
        await using var proxy = new TcpProxy(port);
        var events = new ConcurrentQueue<BrokerClientEvent>();
        await using var client = await BrokerClient.ConnectAsync(s_options with { Endpoints = [proxy.Endpoint], OnEvent = events.Enqueue });
        await using var member = await Within(client.JoinGroupAsync(Topic, "workers"));
        await using (var producer = await BrokerClient.ConnectAsync(s_options with { Endpoints = [first.Endpoint] }))
        {
            await Within(producer.PublishAsync(Topic, Bytes("j0")));
        }

        using (var cts = new CancellationTokenSource(Deadline))
        {
            Assert.Equal("j0", (await member.ReadAsync(cts.Token)).GetPayloadString());
        }

        proxy.Cut();
        first.Kill();
        File.Delete(state);
        File.CreateSymbolicLink(state, "/proc/self/mem");

        // The server opens (the file is reported, not a reason to stop) and serves.
        using var host = await HostProcess.StartAsync(dir.Path, port);
        await using var other = await BrokerClient.ConnectAsync(s_options with { Endpoints = [host.Endpoint] });
        await Within(other.PublishAsync(Topic, Bytes("j1")));

        // A join is refused for good, naming the file and the device's error.
        var refusal = await Assert.ThrowsAsync<BrokerClientException>(async () => await Within(other.JoinGroupAsync(Topic, "workers")));
        Assert.Equal(ErrorCode.StorageError, refusal.ErrorCode);
        Assert.Contains(state, refusal.Reason, StringComparison.Ordinal);
        Assert.Contains("Input/output error", refusal.Reason, StringComparison.Ordinal);

        // So is the member's rejoin: the membership ends with the server's code and reason, not retried.
        proxy.Restore();
        using var wait = new CancellationTokenSource(Deadline);
        var ended = await Assert.ThrowsAsync<BrokerClientException>(async () => await member.ReadAsync(wait.Token));
        Assert.Equal(ErrorCode.StorageError, ended.ErrorCode);
        Assert.Contains(state, ended.Reason, StringComparison.Ordinal);
        Assert.DoesNotContain(events, e => e.Code == ErrorCode.ResourceExhausted);
        Assert.Equal("/proc/self/mem", new FileInfo(state).LinkTarget); // left as it is
        Assert.False(host.Child.HasExited, $"the server died: {host.Child.Errors}");
    }
}
