using FastBroker.Client;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// Without a witness, two nodes that cannot see each other can each be promoted by hand, and each takes the same epoch
/// number: the same epoch with different logs, each holding records it confirmed (locally: it had no standby). When they
/// see each other again the one with the greater node id steps down, whichever probes first, so no two nodes go on
/// accepting writes in one epoch. But a node id says nothing about whose records matter: the one that stepped down is
/// not cut back; the primary refuses to attach it, naming both logs' ends, until an operator picks the log to keep (here:
/// by promoting the node that stepped down, which cuts the other's records of that epoch when it follows).
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class EqualEpochStepDownTests(ITestOutputHelper output)
{
    private const string Topic = "twins.orders";
    private const int OnA = 5;
    private const int OnB = 3;

    [Fact]
    public async Task Of_two_primaries_of_one_epoch_the_greater_node_id_steps_down_and_keeps_what_it_wrote_until_an_operator_picks()
    {
        await using var pair = new PairHarness();
        try
        {
            string[] standby = ["--role", "standby"];
            var (a, b) = pair.AddPair(standby, standby, proxied: true);
            pair.ToA!.Cut();
            pair.ToB!.Cut();
            await a.StartAsync();
            await b.StartAsync();

            // The operator promotes each, believing the other gone: both take epoch 1, and each confirms writes.
            var epoch = (await PromoteAsync(a)).Epoch;
            Assert.Equal(epoch, (await PromoteAsync(b)).Epoch);
            await PrefixedMessages.PublishAsync(a, Topic, "a", OnA, FastBroker.Protocol.Durability.Written);
            await PrefixedMessages.PublishAsync(b, Topic, "b", OnB, FastBroker.Protocol.Durability.Written);

            pair.ToA.Restore();
            pair.ToB.Restore();
            var refusedLine = $"standby 'b' and this primary 'a' each began epoch {epoch} (promoted separately): '{Topic}' ends at {OnB} there and at {OnA} here, its records from 0 on are not in this log";
            var steppedDown = await b.WaitForAsync(
                s => s.IsStandby && s.Epoch == epoch && s.Events.Any(e => e.Contains(refusedLine, StringComparison.Ordinal)),
                "b, the greater node id, steps down, and a refuses to attach it, naming both logs' ends");
            output.WriteLine(string.Join('\n', steppedDown.Events.TakeLast(4)));
            Assert.Contains(steppedDown.Events, e => e.Contains($"primary at the same epoch {epoch}: two primaries", StringComparison.Ordinal));
            Assert.Contains(steppedDown.Events, e => e.Contains("move its data directory away", StringComparison.Ordinal) && e.Contains("promote it", StringComparison.Ordinal));
            Assert.True(steppedDown.Replica is null || (steppedDown.Replica.Truncations.Count == 0 && !steppedDown.Replica.Connected),
                $"b is neither cut back nor following a: {steppedDown.Json}");

            var kept = await a.WaitForAsync(s => s.IsPrimary, "a is still primary");
            Assert.Equal(epoch, kept.Epoch);
            Assert.DoesNotContain(kept.Events, e => e.Contains("Fenced", StringComparison.Ordinal));
            var refused = await Assert.ThrowsAsync<BrokerClientException>(() => PrefixedMessages.PublishAsync(b, Topic, "late", 1, FastBroker.Protocol.Durability.Written));
            output.WriteLine($"b after stepping down: {refused.Message}");
            var onA = await TopicContent.ReadAsync(a.ClientEndpoint, Topic);
            Assert.Equal(OnA, onA.Head);
            onA.AssertRun(0, "a", OnA);

            // The operator keeps b's log: b is promoted (a newer epoch), a steps down and follows it, and a's records of
            // the shared epoch number are cut, and reported. b's three are all there.
            var (status, body) = await b.PromoteAsync();
            Assert.True(status == 200, $"POST /promote on b: {status} {body}");
            var promoted = await b.WaitForAsync(s => s.IsPrimary, "b is primary");
            Assert.True(promoted.Epoch > epoch, $"b takes a newer epoch: {promoted.Epoch}");
            var follower = await a.WaitForAsync(
                s => s.IsStandby && s.Replica is { Connected: true, PrimaryId: "b" } && s.ReplicaOf(Topic) is { Durable: OnB },
                "a follows b");
            follower.AssertCutAt(Topic, 0);
            var onB = await TopicContent.ReadAsync(b.ClientEndpoint, Topic);
            Assert.Equal(OnB, onB.Head);
            onB.AssertRun(0, "b", OnB);
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }

    private static async Task<NodeStatus> PromoteAsync(NodeProcess node)
    {
        await node.WaitForAsync(s => s.IsStandby, $"{node.Id} waits as standby");
        var (status, body) = await node.PromoteAsync();
        Assert.True(status == 200, $"POST /promote on {node.Id}: {status} {body}");
        return await node.WaitForAsync(s => s.IsPrimary, $"{node.Id} is primary");
    }
}
