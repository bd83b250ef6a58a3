using System.Collections.Concurrent;
using FastBroker.Replication;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A standby retries a dead peer every 50 ms. Its log and the last-50 event list of <c>/status</c> must show why once,
/// not once per attempt, or the lines an operator needs after a failover (promotion, truncations) are pushed out.
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class StandbyLogTests
{
    [Fact]
    public async Task A_standby_whose_peer_is_unreachable_logs_the_reason_once_not_per_attempt()
    {
        using var dir = new TempDirectory();
        var lines = new ConcurrentQueue<string>();
        await using var node = await ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, new ReplicationOptions
        {
            NodeId = "lonely",
            DataDirectory = dir.Path,
            Port = FreePort.Next(),
            Peer = $"127.0.0.1:{FreePort.Next()}", // nothing listens there
            InitialRole = NodeRole.Standby,
            Log = lines.Enqueue,
        });

        await Eventually.TrueAsync(() => node.LinkAttempts >= 8, "the standby retried its peer several times");
        var unreachable = lines.Where(l => l.Contains("cannot connect", StringComparison.Ordinal)).ToList();
        Assert.True(unreachable.Count == 1, $"{node.LinkAttempts} attempts logged:\n{string.Join('\n', lines)}");
        Assert.Single(NodeStatus.Parse(node.GetStatusJson()).Events, e => e.Contains("cannot connect", StringComparison.Ordinal));
    }
}
