using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A node rejoins a primary whose epoch history lacks the epoch the node last followed: the node led that epoch while
/// cut off, and the primary, which never heard of it, took the next one. Their histories part at the last epoch they
/// share, so the node must cut where <em>its own</em> later epoch began, even though the primary's next epoch begins
/// further on: the offsets in between hold different records on each side.
/// </summary>
[Collection(nameof(PairProcessCollection))]
public sealed class DivergentHistoryRejoinTests(ITestOutputHelper output)
{
    private const string Topic = "diverge.orders";
    private const int Shared = 10;
    private const int PrimaryOnly = 5;
    private const int LedWhileCutOff = 2;

    [Fact]
    public async Task A_node_that_led_an_epoch_the_primary_never_saw_cuts_where_that_epoch_began()
    {
        await using var pair = new PairHarness();
        try
        {
            // A 2 s heartbeat timeout (4 s lease), not the default 500 ms: a node stalled by a loaded machine past a 1 s
            // lease fences itself and the pair changes roles between the steps. Every take-over here is of a dead node's
            // lease, which still runs out, only later.
            var (a, b, first) = await pair.StartWitnessedPairAsync("--heartbeat-timeout-ms", "2000");

            // Epoch 1: r… on both; then l… on a alone (b is down).
            await PrefixedMessages.PublishAsync(a, Topic, "r", Shared, FastBroker.Protocol.Durability.StandbyDurable);
            b.Kill();
            await a.WaitForAsync(s => s.Standby is { Attached: false }, "a sees its standby gone");
            await PrefixedMessages.PublishAsync(a, Topic, "l", PrimaryOnly, FastBroker.Protocol.Durability.Written);

            // a dies; b comes back alone, takes the lease once a's expires (epoch 2) and writes n… from offset 10.
            a.Kill();
            await b.StartAsync();
            var epochB = (await b.WaitForAsync(s => s.IsPrimary, "b takes the lease while a is down")).Epoch;
            Assert.True(epochB > first.Epoch, $"b's epoch {epochB} after a's {first.Epoch}");
            Assert.Equal(Shared, await PrefixedMessages.PublishAsync(b, Topic, "n", LedWhileCutOff, FastBroker.Protocol.Durability.Written));

            // b dies; a comes back alone and takes the lease (epoch 3): its history has epochs 1 and 3, never 2.
            b.Kill();
            await a.StartAsync();
            var epochA = (await a.WaitForAsync(s => s.IsPrimary, "a takes the lease while b is down")).Epoch;
            Assert.True(epochA > epochB, $"a's epoch {epochA} after b's {epochB}");

            // b returns and follows a: its n… (epoch 2) must go, a's l… take their place.
            await b.StartAsync();
            var rejoined = await b.WaitForAsync(
                s => s.IsStandby && s.Epoch == epochA && s.Replica is { Connected: true } && s.ReplicaOf(Topic) is { Durable: Shared + PrimaryOnly },
                "b follows a and holds a's records durably");
            var cut = Assert.Single(rejoined.Replica!.Truncations, t => t.Contains($"'{Topic}'", StringComparison.Ordinal));
            Assert.Contains($"cut at offset {Shared}", cut, StringComparison.Ordinal);
            output.WriteLine(cut);

            // What b holds is what a holds: a dies, b takes over and serves r…, l….
            a.Kill();
            await b.WaitForAsync(s => s.IsPrimary, "b is promoted when a dies");
            var onB = await TopicContent.ReadAsync(b.ClientEndpoint, Topic);
            Assert.Equal(Shared + PrimaryOnly, onB.Head);
            onB.AssertRun(0, "r", Shared);
            onB.AssertRun(Shared, "l", PrimaryOnly);
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }
}
