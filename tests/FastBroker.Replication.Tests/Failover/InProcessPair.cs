using FastBroker.Replication;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// Two in-process nodes on 127.0.0.1 with no witness: "a" started as primary, then "b" following it, returned once a
/// counts b in its replication gate (<c>standby.confirming</c>).
/// </summary>
internal static class InProcessPair
{
    private static readonly TimeSpan s_confirmingDeadline = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Starts both (data in <c>dir/a</c> and <c>dir/b</c>); the caller disposes them. <paramref name="configure"/>
    /// adjusts each node's replication options; <paramref name="standbyPeer"/> maps the primary's replication port to
    /// the endpoint b connects to (a <see cref="TcpProxy"/> in front of it, say). Returns once a counts b in its
    /// replication gate (<c>standby.confirming</c>: b welcomed, so standby-mode publishes and commits wait for it rather
    /// than being confirmed as with no standby), or with <paramref name="waitForConfirming"/> false once b reports the
    /// standby role (its standby loop may not have connected yet).
    /// </summary>
    public static async Task<(ReplicatedNode Primary, ReplicatedNode Standby)> StartAsync(
        TempDirectory dir,
        BrokerOptions brokerOptions,
        Func<ReplicationOptions, ReplicationOptions>? configure = null,
        Func<int, string>? standbyPeer = null,
        bool waitForConfirming = true)
    {
        // A port FreePort released may be taken meanwhile (another test process's outgoing connection draws from the
        // same ephemeral range): "Address already in use" once under CI. Then both start again, afresh, on new ports.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await StartOnceAsync(dir, brokerOptions, configure, standbyPeer, waitForConfirming);
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
        Func<int, string>? standbyPeer,
        bool waitForConfirming)
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

            if (waitForConfirming && await WaitForConfirmingAsync(a) is { } last)
            {
                var standby = b.GetStatusJson();
                await b.DisposeAsync();
                throw new TimeoutException($"node a: not within {s_confirmingDeadline.TotalSeconds:0} s: a counts b in its replication gate (standby.confirming) once b follows it\nlast status of a: {last}\nof b: {standby}");
            }

            return (a, b);
        }
        catch
        {
            await a.DisposeAsync();
            throw;
        }
    }

    /// <summary>Polls <paramref name="primary"/>'s status until it says its standby is confirming: null then, else its last status.</summary>
    private static async Task<string?> WaitForConfirmingAsync(ReplicatedNode primary)
    {
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            var last = primary.GetStatusJson();
            if (NodeStatus.Parse(last).StandbyConfirming)
            {
                return null;
            }

            if (waited.Elapsed > s_confirmingDeadline)
            {
                return last;
            }

            await Task.Delay(10); // polling interval of a condition with a deadline
        }
    }
}
