using System.Text;
using FastBroker.Client;
using FastBroker.Replication;
using FastBroker.Replication.Internal;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// The standby's durable ACK names topics by the ids of the link it was built for, and a new link numbers the topics
/// afresh (in the primary's registry order, not in the order they were created while the last link streamed). An ACK
/// built just before its link is replaced must never reach the new link: there it would credit other topics with
/// positions the standby has not flushed, and standby-durable publishes would be confirmed on records the standby does
/// not hold. The test holds the standby's durable thread between building an ACK of every topic and sending it,
/// replaces the link meanwhile, lets the ACK go, and checks what the primary credits against what the standby flushed.
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class DurableAckLinkTests
{
    /// <summary>Topics at least: enough that a new link almost surely numbers them in another order than their creation.</summary>
    private const int Topics = 12;

    [Fact]
    public async Task A_durable_ack_built_for_one_link_never_credits_topics_on_the_next()
    {
        using var dir = new TempDirectory();
        TcpProxy? toA = null;
        var (a, b) = await InProcessPair.StartAsync(dir, BrokerOptions.Default, standbyPeer: port => (toA = new TcpProxy(port)).Endpoint);
        await using var proxy = toA!;
        await using var primary = a;
        await using var standby = b;
        var names = new List<string>();
        AckHold? hold = null;
        try
        {
            // Topics created while a link streams are numbered by it in creation order; a new link numbers them in the
            // registry's order. Distinct heads, so that a position credited to the wrong topic shows. Should the link be
            // replaced before the held ACK is built (a loaded machine), the new one numbers them as the next will: one
            // topic more tells the two apart again.
            List<string> firstLink;
            do
            {
                hold?.Release();
                do
                {
                    names.Add($"acklink.t{names.Count:D2}");
                    await PublishAsync(a, names[^1], 10 * names.Count);
                    await Eventually.TrueAsync(() => Status(a).Standby is { Attached: true } s && s.Topics.Count == names.Count, "b is attached with every topic");
                }
                while (names.Count < Topics || Order(Status(a)).SequenceEqual(RegistryOrder(a)));

                await Eventually.TrueAsync(() => names.All(Status(a).StandbyCaughtUp), "b holds every topic durably");

                // Hold the first durable ACK that covers every topic, between building it and sending it.
                hold = new AckHold(b.Replica!, names.Count);
                var rounds = System.Diagnostics.Stopwatch.StartNew();
                do
                {
                    Assert.True(rounds.Elapsed < Eventually.DefaultTimeout, "no durable ACK covered every topic");
                    foreach (var name in names)
                    {
                        await PublishAsync(a, name, 1);
                    }
                }
                while (!await hold.HeldAsync(TimeSpan.FromMilliseconds(500)));

                firstLink = Order(Status(a));
            }
            while (firstLink.SequenceEqual(RegistryOrder(a)));

            // A new link while the ACK waits: b reconnects through the proxy and a numbers the topics anew.
            var welcomes = b.Replica!.Welcomes;
            proxy.CutAll();
            await Eventually.TrueAsync(() => b.Replica.Welcomes > welcomes && b.Replica.Connected && Status(a) is { StandbyConfirming: true, Standby: { } s } && s.Topics.Count == names.Count, "b follows a on a new link and confirms its publishes");
            var secondLink = Order(Status(a));
            Assert.True(!firstLink.SequenceEqual(secondLink), $"the new link numbers the topics as the old one did ({string.Join(", ", secondLink)}): nothing to tell apart\n" + string.Join("\n", Status(b).Events));

            // Let the old link's ACK go, then publish standby-durable to every topic: each confirmation needs an ACK the
            // standby sends after the held one, so by the time all are confirmed the primary has read the held ACK too.
            hold.Release();
            await using (var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [a.Server!.EndPoint.ToString()], Reconnect = false }))
            {
                var options = PublishOptions.Default with { Durability = FastBroker.Protocol.Durability.StandbyDurable };
                await Task.WhenAll(names.Select(n => client.PublishAsync(n, "after the new link"u8.ToArray(), options).AsTask())).WaitAsync(Eventually.DefaultTimeout);
            }

            // What the primary credits (and so confirms on) never exceeds what the standby has flushed.
            var credited = Status(a).Standby!.Topics;
            foreach (var t in credited)
            {
                var flushed = b.Replica.JournalOf(t.Topic)!.DurableOffset;
                Assert.True(t.Durable <= t.Head && t.Durable <= flushed, $"'{t.Topic}': a credits b as durable up to {t.Durable} (head {t.Head}) but b has flushed up to {flushed}");
            }
        }
        finally
        {
            hold?.Release();
        }
    }

    private static NodeStatus Status(ReplicatedNode node) => NodeStatus.Parse(node.GetStatusJson());

    /// <summary>The topics in the order of the primary's link ids.</summary>
    private static List<string> Order(NodeStatus primary) => [.. primary.Standby!.Topics.Select(t => t.Topic)];

    /// <summary>The order in which a new link would number the primary's topics.</summary>
    private static IEnumerable<string> RegistryOrder(ReplicatedNode primary) => primary.Broker!.Topics.All.Where(t => t.Persistent).Select(t => t.Name);

    private static async Task PublishAsync(ReplicatedNode node, string topic, int count)
    {
        for (var i = 0; i < count; i++)
        {
            await node.Broker!.PublishAsync(topic, Encoding.UTF8.GetBytes($"{topic}/{i}"));
        }
    }

    /// <summary>Holds the standby's durable thread once, between building an ACK of <c>count</c> topics and sending it.</summary>
    private sealed class AckHold
    {
        private readonly SemaphoreSlim _held = new(0);
        private readonly ManualResetEventSlim _released = new();
        private int _armed = 1;

        public AckHold(StandbyReplica replica, int count) =>
            replica.DurableAckBuilt = n =>
            {
                if (n == count && Interlocked.Exchange(ref _armed, 0) == 1)
                {
                    _held.Release();
                    _released.Wait(Eventually.DefaultTimeout);
                }
            };

        public Task<bool> HeldAsync(TimeSpan timeout) => _held.WaitAsync(timeout);

        public void Release() => _released.Set();
    }
}
