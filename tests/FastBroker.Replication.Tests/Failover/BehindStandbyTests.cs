using System.Text;
using FastBroker.Client;
using FastBroker.Replication;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// Degrade-to-local with a witness, across real processes: a primary whose standby is gone confirms standby-mode
/// publishes as local only after the witness records the standby behind, and the witness then keeps the lease from
/// that standby — even once the primary is dead — so the publishes are not lost by an automatic promotion. The pair
/// recovers when the old primary returns (its standby catches up and is recorded in sync again), or by a forced
/// promotion that gives them up.
/// </summary>
[Collection(nameof(PairProcessCollection))]
public sealed class BehindStandbyTests(ITestOutputHelper output)
{
    private const string Topic = "behind.orders";
    private const int Degraded = 50;

    [Fact]
    public async Task A_standby_lacking_local_confirmations_is_not_promoted_and_catches_up_when_the_primary_returns()
    {
        await using var pair = new PairHarness();
        try
        {
            var (a, b, before, witness) = await StartDegradedWithoutStandbyAsync(pair);

            // a dies too. b comes back alone: the witness keeps the lease for a (it would lose the 50 publishes).
            a.Kill();
            await b.StartAsync();
            await b.WaitForAsync(s => s.Events.Any(e => e.Contains("the witness keeps the lease for 'a'", StringComparison.Ordinal)), "b is refused the lease because a reported it behind");
            await WaitForExpiredLeaseOfAAsync(witness);
            await b.WaitForAsync(s => s.IsStandby, "b stays standby once a's lease has run out");

            // a returns: it still holds the lease at its epoch, b follows it, copies the 50 and is recorded in sync.
            await a.StartAsync();
            var back = await a.WaitForAsync(s => s.IsPrimary && s.StandbyCaughtUp(Topic), "a is primary again, and b holds everything and is in sync at the witness", TimeSpan.FromSeconds(60));
            Assert.Equal(before.Epoch, back.Epoch); // nobody else was granted the lease meanwhile
            Assert.False((await StatusAsync(witness)).StandbyBehind);

            // Now a failover keeps them: kill a, b is promoted and holds every degraded publish.
            a.Kill();
            var promoted = await b.WaitForAsync(s => s.IsPrimary, "b is promoted once it is in sync");
            Assert.True(promoted.Epoch > before.Epoch, $"b's epoch {promoted.Epoch} must be newer than a's {before.Epoch}");
            var content = await TopicContent.ReadAsync(b.ClientEndpoint, Topic);
            Assert.Equal(Degraded + 1, content.Head - content.Tail);
            content.AssertRun(content.Tail + 1, "d", Degraded);
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }

    [Fact]
    public async Task A_forced_promotion_takes_over_from_a_primary_that_reported_its_standby_behind()
    {
        await using var pair = new PairHarness();
        try
        {
            var (a, b, before, witness) = await StartDegradedWithoutStandbyAsync(pair);
            a.Kill();
            await b.StartAsync();
            await WaitForExpiredLeaseOfAAsync(witness);
            await b.WaitForAsync(s => s.IsStandby, "b decided to wait as standby");

            var (refused, refusal) = await b.PromoteAsync();
            Assert.True(refused == 409, $"POST /promote: {refused} {refusal}");
            Assert.Contains("force the promotion", refusal, StringComparison.Ordinal);

            // Refused (409) until the witness's safety margin after a's lease has passed too; then granted.
            var (status, body) = await WitnessFixture.UntilAsync(() => b.PromoteAsync(force: true), r => r.Status != 409, "the forced promotion is granted once a's lease and the witness's margin have run out");
            Assert.True(status == 200, $"POST /promote/force: {status} {body}");
            var promoted = await b.WaitForAsync(s => s.IsPrimary, "b is primary after the forced promotion");
            Assert.True(promoted.Epoch > before.Epoch, $"b's epoch {promoted.Epoch} must be newer than a's {before.Epoch}");
            var lease = await StatusAsync(witness);
            Assert.Equal(("b", promoted.Epoch, false), (lease.Holder, lease.Epoch, lease.StandbyBehind));

            // What a confirmed as local while b was away is what the operator gave up: b has only the first message.
            var content = await TopicContent.ReadAsync(b.ClientEndpoint, Topic);
            Assert.Equal(1, content.Head - content.Tail);
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }

    /// <summary>
    /// A witnessed pair with <c>--degrade-to-local</c>; one standby-durable publish replicated, then b killed and
    /// <see cref="Degraded"/> more publishes confirmed by a alone, which has the witness record b behind first.
    /// </summary>
    private async Task<(NodeProcess A, NodeProcess B, NodeStatus Before, WitnessProcess Witness)> StartDegradedWithoutStandbyAsync(PairHarness pair)
    {
        // A 2 s heartbeat timeout (4 s lease), not 500 ms: a primary stalled by a loaded machine past a 1 s lease fences
        // itself, and once b is in sync again it may rightly be granted the lease. The waits for a's lease to run out are
        // deadline-based polls of the witness, so a longer lease only makes them longer.
        var (a, b, before) = await pair.StartWitnessedPairAsync("--acks", "standby-durable", "--heartbeat-timeout-ms", "2000", "--degrade-to-local");
        await using (var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [a.ClientEndpoint], Reconnect = false }))
        {
            await client.PublishAsync(Topic, "first"u8);
            await a.WaitForAsync(s => s.StandbyCaughtUp(Topic), "b holds the first publish");

            b.Kill();
            await a.WaitForAsync(s => s.Standby is { Attached: false }, "a sees b gone");
            for (var i = 0; i < Degraded; i++)
            {
                await client.PublishAsync(Topic, Encoding.ASCII.GetBytes($"d{i:D4}")).AsTask().WaitAsync(TimeSpan.FromSeconds(60));
            }
        }

        var degraded = await a.WaitForAsync(s => s.IsPrimary, "a is primary");
        Assert.True(degraded.Standby is { Degraded: Degraded, WitnessRecordsBehind: true }, degraded.Json);
        Assert.True((await StatusAsync(pair.Witness!)).StandbyBehind, "the witness records b behind");
        output.WriteLine($"a confirmed {Degraded} publishes as local at epoch {before.Epoch} with b down");
        return (a, b, before, pair.Witness!);
    }

    private static async Task<LeaseResult> StatusAsync(WitnessProcess witness)
    {
        await using var client = new WitnessClient(witness.Endpoint, TimeSpan.FromSeconds(10));
        var status = await client.StatusAsync();
        Assert.Equal(LeaseResultKind.Status, status.Kind);
        return status;
    }

    /// <summary>Waits until the witness says a's lease has run out (a is dead): from then on only the standby flag keeps it from b.</summary>
    private static async Task WaitForExpiredLeaseOfAAsync(WitnessProcess witness)
    {
        var status = await WitnessFixture.UntilAsync(
            () => StatusAsync(witness),
            r => r.Remaining == TimeSpan.Zero,
            "a's lease runs out (a is dead)",
            each: r => Assert.True(r.Holder == "a", $"the witness granted the lease to another node: {r}"));
        Assert.True(status.StandbyBehind, status.ToString());
    }
}
