using FastBroker.Replication;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A failover pair's node locks its data directory from its start to its dispose, through every role: while b is the
/// standby (its copy open) and after its promotion (the copy closed, its broker opened in the same process), an
/// embedded broker and another node on b's directory are refused; once b is disposed the directory opens.
/// </summary>
public sealed class DataDirectoryLockNodeTests
{
    [Fact]
    public async Task A_node_holds_its_data_directory_as_standby_through_its_promotion_until_it_is_disposed()
    {
        using var dir = new TempDirectory("fastbroker-node-dir-lock");
        var (a, b) = await InProcessPair.StartAsync(dir, BrokerOptions.Default);
        var bData = dir.Combine("b");
        await using (a)
        await using (b)
        {
            await a.Broker!.PublishAsync("orders", "hello"u8.ToArray());
            await Eventually.TrueAsync(() => NodeStatus.Parse(a.GetStatusJson()).StandbyCaughtUp("orders"), "b holds the topic", TimeSpan.FromSeconds(60));
            await AssertRefusedAsync(bData, "b is the standby");

            await a.DisposeAsync();
            await b.PromoteAsync();
            Assert.Equal(NodeRole.Primary, b.Role);
            await AssertRefusedAsync(bData, "b was promoted");
        }

        await using var reopened = await Broker.OpenAsync(BrokerOptions.Default with { DataDirectory = bData });
        Assert.True(reopened.TopicExists("orders"));
    }

    /// <summary>An embedded broker and a second node on <paramref name="data"/> are both refused at once, naming the directory.</summary>
    private static async Task AssertRefusedAsync(string data, string when)
    {
        var embedded = await Record.ExceptionAsync(async () => await (await Broker.OpenAsync(BrokerOptions.Default with { DataDirectory = data })).DisposeAsync());
        Assert.True(
            embedded is BrokerException { Code: BrokerErrorCode.ResourceExhausted } e && e.Message.Contains($"data directory '{data}' is in use by another broker", StringComparison.Ordinal),
            $"{when}: an embedded broker on b's directory: {embedded?.ToString() ?? "it opened"}");

        var options = new ReplicationOptions { NodeId = "c", DataDirectory = data, Port = FreePort.Next(), Peer = "127.0.0.1:1", InitialRole = NodeRole.Standby };
        var node = await Record.ExceptionAsync(async () => await (await ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, options)).DisposeAsync());
        Assert.True(node is BrokerException { Code: BrokerErrorCode.ResourceExhausted }, $"{when}: another node on b's directory: {node?.ToString() ?? "it started"}");
    }
}
