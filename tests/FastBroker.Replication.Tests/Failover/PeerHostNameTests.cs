using System.Collections.Concurrent;
using FastBroker.Replication;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A peer or witness named by a host name is resolved at every connect attempt (on 127.0.0.1 only: <c>localhost</c>);
/// a name that does not resolve is a failed attempt, logged with the name and retried, never a crash. They were refused
/// at start ("a host name is not resolved and is refused").
/// </summary>
public class PeerHostNameTests
{
    private const string Unresolvable = "no-such-host.invalid"; // RFC 6761: never resolves

    /// <summary>Both nodes name each other <c>localhost</c>: b follows a and copies what a stores.</summary>
    [Fact]
    public async Task A_pair_whose_nodes_name_each_other_localhost_replicates()
    {
        using var dir = new TempDirectory();
        var log = new ConcurrentQueue<string>();
        var (a, b) = await InProcessPair.StartAsync(
            dir,
            BrokerOptions.Default,
            o => o with { Peer = o.Peer.Replace("127.0.0.1:", "localhost:", StringComparison.Ordinal), Log = log.Enqueue },
            standbyPeer: port => $"localhost:{port}");
        await using (a)
        await using (b)
        {
            await PositionCopies.PublishAsync(a.Broker!, "named", 3);
            await Eventually.TrueAsync(
                () => b.Replica is { } r && r.Heads().GetValueOrDefault("named") == 3,
                $"b, following a at localhost, copies a's 3 records; log:\n{string.Join('\n', log)}");
            Assert.Equal("a", b.Replica!.PrimaryId);
            Assert.Contains(log, l => l.Contains("node 'b': peer localhost:", StringComparison.Ordinal) && l.Contains(": 'localhost' resolves to ", StringComparison.Ordinal));
        }
    }

    /// <summary>
    /// A standby whose peer's name does not resolve keeps running as standby and retries it every attempt (each one
    /// resolving the name again), saying once, with the name, why it cannot connect; it stops cleanly.
    /// </summary>
    [Fact]
    public async Task A_peer_name_that_does_not_resolve_is_a_failed_connect_logged_and_retried()
    {
        using var dir = new TempDirectory();
        var log = new ConcurrentQueue<string>();
        var peer = $"{Unresolvable}:{FreePort.Next()}";
        var node = await ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, new ReplicationOptions
        {
            NodeId = "b",
            DataDirectory = dir.Combine("b"),
            Port = 0,
            Peer = peer,
            InitialRole = NodeRole.Standby,
            PeerWait = TimeSpan.Zero,
            Log = log.Enqueue,
        });
        await using (node)
        {
            Assert.True(await node.WaitForRoleAsync(NodeRole.Standby, Eventually.DefaultTimeout), $"b becomes standby (role {node.Role})");
            await Eventually.TrueAsync(() => node.LinkAttempts >= 3, $"b tries its peer again and again; log:\n{string.Join('\n', log)}");
            Assert.Equal(NodeRole.Standby, node.Role);

            var lines = log.ToArray();
            var linkDown = lines.Where(l => l.Contains($"standby: link down: cannot connect to the primary at {peer}: the host name '{Unresolvable}' does not resolve (", StringComparison.Ordinal)).ToArray();
            Assert.True(linkDown.Length == 1, $"one link-down line naming the name, not one per attempt:\n{string.Join('\n', lines)}");
            var resolving = lines.Where(l => l.Contains($"peer {peer}: the host name '{Unresolvable}' does not resolve (", StringComparison.Ordinal)).ToArray();
            Assert.True(resolving.Length == 1, $"one resolution line, for probes and connects alike:\n{string.Join('\n', lines)}");
            Assert.Contains("it is resolved again at every connect attempt", resolving[0], StringComparison.Ordinal);
            Assert.DoesNotContain(lines, l => l.Contains("unexpected", StringComparison.OrdinalIgnoreCase));
        }
    }

    /// <summary>
    /// A witness named <c>localhost</c> grants the lease; one whose name does not resolve counts as unreachable: the
    /// node stays standby, saying why with the name, and asks again.
    /// </summary>
    [Fact]
    public async Task A_witness_is_reached_by_name_and_one_whose_name_does_not_resolve_is_unreachable()
    {
        using var dir = new TempDirectory();
        await using var witness = await WitnessFixture.StartAsync();
        var log = new ConcurrentQueue<string>();
        ReplicationOptions Options(string id, string witnessEndpoint) => new()
        {
            NodeId = id,
            DataDirectory = dir.Combine(id),
            Port = 0,
            Peer = $"127.0.0.1:{FreePort.Next()}", // nobody: the node decides alone
            Witness = witnessEndpoint,
            PeerWait = TimeSpan.Zero,
            Log = log.Enqueue,
        };

        await using (var named = await ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, Options("a", $"localhost:{witness.Server.EndPoint.Port}")))
        {
            Assert.True(await named.WaitForRoleAsync(NodeRole.Primary, Eventually.DefaultTimeout), $"a takes the lease from the witness at localhost (role {named.Role}); log:\n{string.Join('\n', log)}");
            Assert.Equal("a", witness.Server.Holder);
        }

        var unresolvable = $"{Unresolvable}:{witness.Server.EndPoint.Port}";
        var node = await ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, Options("b", unresolvable));
        await using (node)
        {
            Assert.True(await node.WaitForRoleAsync(NodeRole.Standby, Eventually.DefaultTimeout), $"b stays standby (role {node.Role}); log:\n{string.Join('\n', log)}");
            // The role is set before its line is logged: wait for the line, not just the role.
            await Eventually.TrueAsync(
                () => log.Any(l => l.Contains("node 'b': Standby (epoch 0): ", StringComparison.Ordinal)
                    && l.Contains($"no witness lease (Unreachable: witness {unresolvable}: the host name '{Unresolvable}' does not resolve (", StringComparison.Ordinal)),
                "b logs that it is standby for want of the unresolvable witness");
            await Eventually.TrueAsync(() => node.LinkAttempts >= 3, "b keeps trying");
            Assert.Equal(NodeRole.Standby, node.Role);
        }
    }
}
