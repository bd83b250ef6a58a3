using System.Collections.Concurrent;
using FastBroker.Replication;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>/status</c>'s <c>standby.confirming</c> says what the replication gate counts: a standby whose link the primary
/// has accepted is <c>attached</c> at once, but it confirms standby-mode publishes only once the primary has sent it
/// the welcome; until then a publish is confirmed as with no standby (here degraded to local). Two in-process nodes, no
/// witness, <c>DegradeToLocal</c>, topics in ack mode standby-received; the welcome is held at its first state file
/// read (<see cref="FastBroker.Replication.Internal.PrimaryReplicator.StateFileRead"/>).
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class StandbyConfirmingStatusTests
{
    private const string Topic = "confirming.orders";
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(30);
    private static readonly BrokerOptions s_brokerOptions = BrokerOptions.Default with { DefaultTopicOptions = TopicOptions.Default with { Acks = AckMode.StandbyReceived } };

    [Fact]
    public async Task Status_says_the_standby_confirms_only_once_it_is_welcomed()
    {
        using var dir = new TempDirectory();
        var lines = new ConcurrentQueue<string>();
        int portA = FreePort.Next(), portB = FreePort.Next();
        ReplicationOptions Node(string id, int port, int peer, NodeRole role) => new()
        {
            NodeId = id,
            DataDirectory = dir.Combine(id),
            Port = port,
            Peer = $"127.0.0.1:{peer}",
            InitialRole = role,
            DegradeToLocal = true,
            HeartbeatTimeout = TimeSpan.FromSeconds(30), // b keeps waiting for the held welcome
            Log = line => lines.Enqueue($"{id}: {line}"),
        };

        await using var a = await ReplicatedNode.StartAsync(s_brokerOptions, ServerOptions.Default with { Port = 0 }, Node("a", portA, portB, NodeRole.Primary));
        Assert.True(await a.WaitForRoleAsync(NodeRole.Primary, s_deadline), "a becomes primary");
        var broker = a.Broker!;

        // A state file the welcome sends b whole (b has none): the welcome reads it, and is held there.
        await broker.PublishAsync(Topic, "m0"u8.ToArray());
        using (var keeper = broker.Subscribe(Topic, SubscriptionOptions.Default with { DurableName = "keeper", Start = StartPosition.Committed }))
        {
            keeper.Commit(Topic, 1);
        }

        var degraded = NodeStatus.Parse(a.GetStatusJson()).Standby!.Degraded; // m0, with no standby at all

        using var reading = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var held = 0;
        a.Replicator!.StateFileRead = _ =>
        {
            if (Interlocked.Exchange(ref held, 1) == 0)
            {
                reading.Set();
                release.Wait(s_deadline);
            }
        };

        try
        {
            await using var b = await ReplicatedNode.StartAsync(s_brokerOptions, ServerOptions.Default with { Port = 0 }, Node("b", portB, portA, NodeRole.Standby));
            Assert.True(reading.Wait(s_deadline), $"a reads a state file for b's welcome:\n{string.Join('\n', lines)}");

            // The link accepted, the welcome not sent: attached, not confirming, and a publish degrades to local.
            var welcoming = NodeStatus.Parse(a.GetStatusJson());
            Assert.True(welcoming.Standby is { Attached: true, Confirming: false } w && w.Degraded == degraded, $"while a welcomes b (degraded {degraded} before): {welcoming.Json}");
            await broker.PublishAsync(Topic, "m1"u8.ToArray()).AsTask().WaitAsync(s_deadline);
            welcoming = NodeStatus.Parse(a.GetStatusJson());
            Assert.True(welcoming.Standby is { Attached: true, Confirming: false } d && d.Degraded == degraded + 1, $"a publish while a welcomes b is confirmed as local: {welcoming.Json}");
            Assert.DoesNotContain(lines, l => l.StartsWith("a: replication: standby 'b' attached", StringComparison.Ordinal));

            release.Set();
            var confirming = await EventuallyStatusAsync(a, s => s.StandbyConfirming, "a counts b once it is welcomed");
            Assert.Contains(lines, l => l.StartsWith("a: replication: standby 'b' attached", StringComparison.Ordinal));

            // Confirming: a publish now waits for b (standby-received), none degrades.
            await broker.PublishAsync(Topic, "m2"u8.ToArray()).AsTask().WaitAsync(s_deadline);
            confirming = NodeStatus.Parse(a.GetStatusJson());
            Assert.True(confirming.Standby is { Confirming: true } s && s.Degraded == degraded + 1 && s.Topics.Single(t => t.Topic == Topic).Received == 3, $"m2 is confirmed by b: {confirming.Json}");
        }
        finally
        {
            release.Set();
        }
    }

    private static async Task<NodeStatus> EventuallyStatusAsync(ReplicatedNode node, Func<NodeStatus, bool> condition, string because)
    {
        NodeStatus? last = null;
        await Eventually.TrueAsync(() => condition(last = NodeStatus.Parse(node.GetStatusJson())), because, s_deadline);
        return last!;
    }
}
