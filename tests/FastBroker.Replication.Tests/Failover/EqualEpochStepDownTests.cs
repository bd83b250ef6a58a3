using FastBroker.Client;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// Without a witness, two nodes that cannot see each other can each be promoted by hand, and each takes the same epoch
/// number. When they see each other again the one with the greater node id steps down and follows the other, whichever
/// probes first: no two nodes go on accepting writes in one epoch. What the one that steps down wrote meanwhile was
/// confirmed only locally (it had no standby); its epoch entry names it as leader, so it is a different history from
/// the other's epoch of the same number, and those records are cut when it rejoins, and reported.
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class EqualEpochStepDownTests(ITestOutputHelper output)
{
    private const string Topic = "twins.orders";
    private const int OnA = 5;
    private const int OnB = 3;

    [Fact]
    public async Task Of_two_primaries_of_one_epoch_the_greater_node_id_steps_down_and_cuts_what_it_wrote()
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
            var follower = await b.WaitForAsync(
                s => s.IsStandby && s.Epoch == epoch && s.Replica is { Connected: true, PrimaryId: "a" } && s.ReplicaOf(Topic) is { Durable: OnA },
                "b, the greater node id, steps down and follows a");
            Assert.Contains(follower.Events, e => e.Contains($"primary at the same epoch {epoch}: two primaries", StringComparison.Ordinal));
            follower.AssertCutAt(Topic, 0);

            var kept = await a.WaitForAsync(s => s.IsPrimary, "a is still primary");
            Assert.Equal(epoch, kept.Epoch);
            Assert.DoesNotContain(kept.Events, e => e.Contains("Fenced", StringComparison.Ordinal));
            var refused = await Assert.ThrowsAsync<BrokerClientException>(() => PrefixedMessages.PublishAsync(b, Topic, "late", 1, FastBroker.Protocol.Durability.Written));
            output.WriteLine($"b after stepping down: {refused.Message}");
            var onA = await TopicContent.ReadAsync(a.ClientEndpoint, Topic);
            Assert.Equal(OnA, onA.Head);
            onA.AssertRun(0, "a", OnA);
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
