using FastBroker.Replication;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>Two in-process nodes on 127.0.0.1 with no witness: "a" started as primary, then "b" following it.</summary>
internal static class InProcessPair
{
    /// <summary>
    /// Starts both (data in <c>dir/a</c> and <c>dir/b</c>); the caller disposes them. <paramref name="configure"/>
    /// adjusts each node's replication options; <paramref name="standbyPeer"/> maps the primary's replication port to
    /// the endpoint b connects to (a <see cref="TcpProxy"/> in front of it, say).
    /// </summary>
    public static async Task<(ReplicatedNode Primary, ReplicatedNode Standby)> StartAsync(
        TempDirectory dir,
        BrokerOptions brokerOptions,
        Func<ReplicationOptions, ReplicationOptions>? configure = null,
        Func<int, string>? standbyPeer = null)
    {
        // A port FreePort released may be taken meanwhile (another test process's outgoing connection draws from the
        // same ephemeral range): "Address already in use" once under CI. Then both start again, afresh, on new ports.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await StartOnceAsync(dir, brokerOptions, configure, standbyPeer);
            }
            catch (System.Net.Sockets.SocketException e) when (e.SocketErrorCode == System.Net.Sockets.SocketError.AddressAlreadyInUse && attempt < 5)
            {
                foreach (var id in new[] { "a", "b" })
                {
                    if (Directory.Exists(dir.Combine(id)))
                    {
                        Directory.Delete(dir.Combine(id), recursive: true);
                    }
                }
            }
        }
    }

    private static async Task<(ReplicatedNode Primary, ReplicatedNode Standby)> StartOnceAsync(
        TempDirectory dir,
        BrokerOptions brokerOptions,
        Func<ReplicationOptions, ReplicationOptions>? configure,
        Func<int, string>? standbyPeer)
    {
        int portA = FreePort.Next(), portB = FreePort.Next();
        var serverOptions = ServerOptions.Default with { Port = 0 };
        ReplicationOptions Node(string id, int port, string peer, NodeRole role)
        {
            var options = new ReplicationOptions
            {
                NodeId = id,
                DataDirectory = dir.Combine(id),
                Port = port,
                Peer = peer,
                InitialRole = role,
            };
            return configure?.Invoke(options) ?? options;
        }

        var a = await ReplicatedNode.StartAsync(brokerOptions, serverOptions, Node("a", portA, $"127.0.0.1:{portB}", NodeRole.Primary));
        try
        {
            Assert.True(await a.WaitForRoleAsync(NodeRole.Primary, TimeSpan.FromSeconds(30)), "a becomes primary");
            var b = await ReplicatedNode.StartAsync(brokerOptions, serverOptions, Node("b", portB, standbyPeer?.Invoke(portA) ?? $"127.0.0.1:{portA}", NodeRole.Standby));
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
