using System.Collections.Concurrent;
using FastBroker.Replication;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// Two in-process nodes with a witness and <c>DegradeToLocal</c>, topics in ack mode standby-durable: "a" takes the lease,
/// "b" follows it and holds a first message of the topic given. Node log lines are collected in <see cref="Lines"/>
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
        try
        {
            Assert.True(await a.WaitForRoleAsync(NodeRole.Primary, TimeSpan.FromSeconds(60)), "a takes the lease");
            var b = await pair.StartBAsync();
            await Eventually.TrueAsync(() => NodeStatus.Parse(a.GetStatusJson()).Standby is { Attached: true }, "b follows a");
            await a.Broker!.PublishAsync(topic, "first"u8.ToArray());
            return (pair, a, b);
        }
        catch
        {
            await a.DisposeAsync();
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
