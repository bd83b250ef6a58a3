using FastBroker.Client;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>fastbroker serve --producer-window / --producer-recovery-records</c> (BrokerOptions.ProducerWindow and
/// ProducerRecoveryRecords): values the broker would refuse are refused by the command line with the rule, and valid
/// ones start a broker that serves.
/// </summary>
public class ServeProducerWindowTests
{
    [Theory]
    [InlineData("--producer-recovery-records", "1000", "--producer-recovery-records (1000) must be 0 (no recovery) or at least 32768")]
    [InlineData("--producer-recovery-records", "-1", "--producer-recovery-records (-1) must be 0 (no recovery) or at least 32768")]
    [InlineData("--producer-window", "100", "--producer-window (100) must be a power of two, at least 64")]
    [InlineData("--producer-window", "32", "--producer-window (32) must be a power of two, at least 64")]
    public void Serve_refuses_a_producer_setting_the_broker_cannot_keep(string option, string value, string error)
    {
        using var dir = new TempDirectory("fastbroker-serve-producer-flags");
        Assert.True(File.Exists(Cli.DllPath), $"fastbroker.dll is not next to the tests: {Cli.DllPath}");
        using var child = ChildProcess.StartDotnet(Cli.DllPath, "serve", "--data", dir.Path, "--port", "0", "--admin-port", "-1", option, value);
        Assert.True(child.WaitForExit(TimeSpan.FromSeconds(60)), "serve did not exit");
        Assert.NotEqual(0, child.ExitCode);
        Assert.Contains(error, child.Errors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_takes_a_producer_window_and_rescan_and_serves_idempotent_publishes()
    {
        using var dir = new TempDirectory("fastbroker-serve-producer-flags");
        var port = FreePort.Next();
        using (var serve = await Cli.ServeAsync(dir.Path, port, "--producer-window", "128", "--producer-recovery-records", "32768"))
        {
            await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [$"127.0.0.1:{port}"], Reconnect = false });
            Assert.Equal(0, await client.PublishAsync("p", new byte[8]));
        }

        // 0 (no recovery of producers) is taken too.
        port = FreePort.Next();
        using (var serve = await Cli.ServeAsync(dir.Path, port, "--producer-recovery-records", "0"))
        {
            await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [$"127.0.0.1:{port}"], Reconnect = false });
            Assert.Equal(1, await client.PublishAsync("p", new byte[8]));
        }
    }
}
