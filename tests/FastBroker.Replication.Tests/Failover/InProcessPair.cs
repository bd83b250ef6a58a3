using FastBroker.Replication;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>Two in-process nodes on 127.0.0.1 with no witness: "a" started as primary, then "b" following it.</summary>
internal static class InProcessPair
{
    /// <summary>
    /// Starts both (data in <c>dir/a</c> and <c>dir/b</c>; <paramref name="configure"/> adjusts both nodes' replication
    /// settings); the caller disposes them.
    /// </summary>
    public static async Task<(ReplicatedNode Primary, ReplicatedNode Standby)> StartAsync(TempDirectory dir, BrokerOptions brokerOptions, Func<ReplicationOptions, ReplicationOptions>? configure = null)
    {
        configure ??= static o => o;
        int portA = FreePort.Next(), portB = FreePort.Next();
        var serverOptions = ServerOptions.Default with { Port = 0 };
        ReplicationOptions Node(string id, int port, int peer, NodeRole role) => configure(new()
        {
            NodeId = id,
            DataDirectory = dir.Combine(id),
            Port = port,
            Peer = $"127.0.0.1:{peer}",
            InitialRole = role,
        });

        var a = await ReplicatedNode.StartAsync(brokerOptions, serverOptions, Node("a", portA, portB, NodeRole.Primary));
        try
        {
            Assert.True(await a.WaitForRoleAsync(NodeRole.Primary, TimeSpan.FromSeconds(30)), "a becomes primary");
            var b = await ReplicatedNode.StartAsync(brokerOptions, serverOptions, Node("b", portB, portA, NodeRole.Standby));
            if (!await b.WaitForRoleAsync(NodeRole.Standby, TimeSpan.FromSeconds(30)))
            {
                await b.DisposeAsync();
                Assert.Fail("b becomes standby");
            }

            return (a, b);
        }
        catch
        {
            await a.DisposeAsync();
            throw;
        }
    }
}
