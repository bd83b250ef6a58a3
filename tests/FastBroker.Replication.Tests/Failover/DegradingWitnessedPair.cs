using System.Collections.Concurrent;
using FastBroker.Replication;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// Two in-process nodes with a witness and <c>DegradeToLocal</c>, topics in ack mode standby-durable: "a" takes the lease,
/// "b" follows it (a's <c>standby.confirming</c>: its publishes wait for b) and holds a first message of the topic given,
/// confirmed by b, not as local. Node log lines are collected in <see cref="Lines"/>
/// ("a: …", "b: …"). The caller disposes both nodes.
/// </summary>
internal sealed class DegradingWitnessedPair(TempDirectory dir, string witness, Func<ReplicationOptions, ReplicationOptions> tune)
{
    private static readonly BrokerOptions s_brokerOptions = BrokerOptions.Default with { DefaultTopicOptions = TopicOptions.Default with { Acks = AckMode.StandbyDurable } };
    private readonly int _portA = FreePort.Next();
    private readonly int _portB = FreePort.Next();

    public ConcurrentQueue<string> Lines { get; } = new();

    public static async Task<(DegradingWitnessedPair Pair, ReplicatedNode A, ReplicatedNode B)> StartAsync(TempDirectory dir, string witness, string topic, Func<ReplicationOptions, ReplicationOptions> tune)
    {
        var pair = new DegradingWitnessedPair(dir, witness, tune);
        var a = await ReplicatedNode.StartAsync(s_brokerOptions, ServerOptions.Default with { Port = 0 }, pair.Node("a", pair._portA, pair._portB));
        ReplicatedNode? b = null;
        try
        {
            Assert.True(await a.WaitForRoleAsync(NodeRole.Primary, TimeSpan.FromSeconds(60)), "a takes the lease");
            b = await pair.StartBAsync();

            // standby.confirming, not standby.attached: that is true from the link's acceptance, while a still welcomes
            // b, and a publish made then is confirmed as local (and the witness records b behind) as with no standby.
            await Eventually.TrueAsync(() => NodeStatus.Parse(a.GetStatusJson()).StandbyConfirming, "b follows a and confirms its publishes");
            await a.Broker!.PublishAsync(topic, "first"u8.ToArray());
            var status = NodeStatus.Parse(a.GetStatusJson());
            Assert.True(status.Standby is { Degraded: 0, WitnessRecordsBehind: false }, $"'first' must reach b, not be confirmed as local: {status.Json}\n{string.Join('\n', pair.Lines)}");
            return (pair, a, b);
        }
        catch
        {
            await a.DisposeAsync();
            if (b is not null)
            {
                await b.DisposeAsync();
            }

            throw;
        }
    }

    /// <summary>Starts "b" (again) as the follower of "a".</summary>
    public Task<ReplicatedNode> StartBAsync() =>
        ReplicatedNode.StartAsync(s_brokerOptions, ServerOptions.Default with { Port = 0 }, Node("b", _portB, _portA));

    private ReplicationOptions Node(string id, int port, int peer) => tune(new()
    {
        NodeId = id,
        DataDirectory = dir.Combine(id),
        Port = port,
        Peer = $"127.0.0.1:{peer}",
        Witness = witness,
        DegradeToLocal = true,
        Log = line => Lines.Enqueue($"{id}: {line}"),
    });
}
