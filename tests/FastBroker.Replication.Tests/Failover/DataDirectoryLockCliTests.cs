using System.Globalization;
using FastBroker.Client;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// The data directory's lock with real processes: a second <c>fastbroker serve</c> on the directory of a running one
/// (that has no topic yet, so no journal's lock) exits 1 at once, naming the directory and the holding process; an
/// embedded broker in this process is refused alike; <c>journal dump</c> and <c>verify</c> read a topic's journal
/// beside the running broker (they take no lock); and after a <c>kill -9</c> of the holder the directory opens again,
/// its <c>broker.lock</c> left behind not blocking.
/// </summary>
public sealed class DataDirectoryLockCliTests
{
    [Fact]
    public async Task A_second_broker_process_is_refused_while_the_first_runs_and_opens_once_it_is_killed()
    {
        using var dir = new TempDirectory("fastbroker-cli-dir-lock");
        var data = dir.Combine("data");
        int portA = FreePort.Next(), portB = FreePort.Next();
        using var first = await Cli.ServeAsync(data, portA);

        // No topic yet: no journal.lock anywhere, the directory's lock alone refuses the second broker.
        string[] second = ["serve", "--data", data, "--port", portB.ToString(CultureInfo.InvariantCulture), "--admin-port", "-1"];
        var refused = await CliOutcome.RunAsync(second, TimeSpan.FromSeconds(60));
        var named = $"data directory '{data}' is in use by another broker";
        var holder = string.Create(CultureInfo.InvariantCulture, $"held by process {first.Id}");
        Assert.True(
            refused.ExitCode == 1 && !refused.HasStackTrace && refused.Errors.Contains(named, StringComparison.Ordinal) && refused.Errors.Contains(holder, StringComparison.Ordinal),
            $"expected exit 1 and \"{named}\" … \"{holder}\" on stderr: {refused.Describe(second)}, stdout: [{refused.Output}]");

        Assert.True(File.Exists(Path.Combine(data, "broker.lock")), "the running broker's lock file");
        var embedded = await Record.ExceptionAsync(async () => await (await Broker.OpenAsync(BrokerOptions.Default with { DataDirectory = data })).DisposeAsync());
        Assert.True(embedded is BrokerException { Code: BrokerErrorCode.ResourceExhausted } e && e.Message.Contains(holder, StringComparison.Ordinal), $"an embedded broker on the running one's directory: {embedded?.ToString() ?? "it opened"}");

        // The read-only commands need no lock: they read a topic's journal beside the running broker.
        await using (var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [Cli.Address(portA)], Reconnect = false }))
        {
            await client.PublishAsync("orders", "hello"u8);
        }

        var journal = Path.Combine(data, "topics", "orders", "journal");
        string[] dump = ["journal", "dump", journal];
        var dumped = await CliOutcome.RunAsync(dump);
        Assert.True(dumped.ExitCode == 0 && dumped.Output.Contains("offset=0 ", StringComparison.Ordinal), $"{dumped.Describe(dump)}, stdout: [{dumped.Output}]");
        string[] verify = ["journal", "verify", journal];
        var verified = await CliOutcome.RunAsync(verify);
        Assert.True(verified.ExitCode == 0, verified.Describe(verify));

        // kill -9: the kernel drops the holder's lock; the file it leaves does not block the next broker.
        first.Kill();
        Assert.True(File.Exists(Path.Combine(data, "broker.lock")));
        await using (var reopened = await Broker.OpenAsync(BrokerOptions.Default with { DataDirectory = data }))
        {
            Assert.True(reopened.TopicExists("orders"));
        }

        using var next = await Cli.ServeAsync(data, portB);
        Assert.False(next.HasExited, next.Errors);
    }
}
