using System.Diagnostics;
using System.Globalization;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A node that holds less of the log than its peer defers to it: it stays standby and refuses a manual promotion, so
/// that the peer, which holds records it lacks, takes over (<see cref="DoublePowerLossTests"/>). Deferring is bounded
/// by <c>--peer-wait-ms</c>: a peer that is ahead but cannot take over must not leave the pair without a primary. With a
/// witness, the node asks for the lease once its peer has been seen ahead, and not primary, for that long; without
/// one, the operator may promote it once that long has passed since it began to defer. The bound is checked as a lower
/// bound, whatever the machine's load (<see cref="AssertDeferredForTheBound"/>).
/// </summary>
[Collection(nameof(PairProcessCollection))]
public sealed class DeferralBoundTests(ITestOutputHelper output)
{
    private const string Topic = "defer.orders";
    private const string Deferring = "deferring to it";
    private const string BecamePrimary = "Primary (epoch";
    private static readonly TimeSpan s_peerWait = TimeSpan.FromSeconds(3);
    private static readonly string[] s_peerWaitOption = ["--peer-wait-ms", s_peerWait.TotalMilliseconds.ToString(CultureInfo.InvariantCulture)];

    /// <summary>
    /// a holds records b lacks (written while b was down) but cannot reach the witness, so it can never take over. b
    /// defers to it, refuses to be promoted while it does, and takes the lease itself once the bound has passed; a then
    /// follows b and cuts what only it held (never confirmed in a standby mode), reported.
    /// </summary>
    [Fact]
    public async Task With_a_witness_the_node_behind_takes_the_lease_once_its_peer_ahead_has_not_taken_over_in_time()
    {
        const int Shared = 10, OnlyOnA = 5;
        await using var pair = new PairHarness();
        try
        {
            // A 2 s heartbeat timeout (4 s lease), not the default 500 ms: in a loaded CI run a, just primary, stalled past its
            // 1 s lease (renewing through the proxy), fenced itself and refused the first publish.
            // A 5 s connect timeout, not 1 s: a restarted node that cannot connect to its peer in time takes it for gone and
            // asks the witness; in a loaded CI run b did so through the proxy and became primary without ever deferring.
            var (a, b, first) = await pair.StartWitnessedPairAsync(proxyWitnessOfA: true, proxied: true, [.. s_peerWaitOption, "--heartbeat-timeout-ms", "2000", "--connect-timeout-ms", "5000"]);
            await PrefixedMessages.PublishAsync(a, Topic, "r", Shared, FastBroker.Protocol.Durability.StandbyDurable);
            b.Kill();
            await a.WaitForAsync(s => s.Standby is { Attached: false }, "a sees its standby gone");
            await PrefixedMessages.PublishAsync(a, Topic, "l", OnlyOnA, FastBroker.Protocol.Durability.Written);
            a.Kill();

            // a comes back ahead of b but cut off from the witness; b comes back behind and finds a there, not primary.
            pair.WitnessOfA!.Cut();
            await a.StartAsync();
            await a.WaitForAsync(s => s.IsStandby, "a, without the lease, waits as standby");
            pair.ToA!.ClearFirstAccepted();
            await b.StartAsync();
            await b.WaitForAsync(s => s.IsStandby && s.EventTime(Deferring) is not null, "b defers to a, which holds more of the log");
            await AssertPromotionRefusedAsync(b);

            var primary = await b.WaitForAsync(s => s.IsPrimary, "b takes the lease once a has not taken over in time");
            var seenPrimary = Stopwatch.GetTimestamp();
            Assert.True(primary.Epoch > first.Epoch, $"b's epoch {primary.Epoch} after a's {first.Epoch}");
            Assert.Contains(primary.Events, e => e.Contains("has not taken over in", StringComparison.Ordinal));
            AssertDeferredForTheBound(primary, pair.ToA.FirstAcceptedAt, seenPrimary);

            await AssertFollowsCutAtAsync(a, b, primary, Shared, "r");
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }

    /// <summary>
    /// Without a witness: both nodes lose power and the primary's disk lost the tail of its journal, which the standby
    /// holds. The standby cannot see the primary (its way there is cut), so it neither follows it nor learns that the
    /// primary defers to it, and never takes over. The primary defers and refuses to be promoted; once the bound has
    /// passed the operator can promote it, and the standby, when it sees it again, is cut back to it (reported).
    /// </summary>
    [Fact]
    public async Task Without_a_witness_the_node_behind_can_be_promoted_by_hand_once_the_bound_has_passed()
    {
        const int Confirmed = 20, OnPrimaryDisk = 12;
        await using var pair = new PairHarness();
        try
        {
            var (a, b, before) = await pair.StartConfiguredPairAsync(s_peerWaitOption, s_peerWaitOption, proxied: true);
            await PrefixedMessages.PublishAsync(a, Topic, "d", Confirmed, FastBroker.Protocol.Durability.StandbyDurable);
            b.Kill();
            a.Kill();
            PowerLoss.LosePageCache(a, Topic, OnPrimaryDisk);

            pair.ToA!.Cut();
            await b.StartAsync();
            await b.WaitForAsync(s => s.IsStandby, "b cannot see a: it waits as standby");
            pair.ToB!.ClearFirstAccepted();
            await a.StartAsync();
            await a.WaitForAsync(s => s.IsStandby && s.EventTime(Deferring) is not null, "a defers to b, which holds more of the log");

            // Refused while it defers, then accepted.
            var refused = 0;
            var sw = Stopwatch.StartNew();
            int status;
            string body;
            while (((status, body) = await a.PromoteAsync()) is not (200, _))
            {
                Assert.True(status == 409 && body.Contains("defers to its peer", StringComparison.Ordinal), $"POST /promote on a while it defers: {status} {body}");
                Assert.True(sw.Elapsed < Eventually.DefaultTimeout, $"a still refuses to be promoted after {sw.Elapsed.TotalSeconds:0} s");
                refused++;
                await Task.Delay(100); // polling interval of a condition with a deadline
            }

            Assert.True(refused > 0, "the first promotion, while a deferred, was accepted");
            var primary = await a.WaitForAsync(s => s.IsPrimary, "a is promoted");
            var seenPrimary = Stopwatch.GetTimestamp();
            Assert.True(primary.Epoch > before.Epoch, $"a's epoch {primary.Epoch} after {before.Epoch}");
            AssertDeferredForTheBound(primary, pair.ToB.FirstAcceptedAt, seenPrimary);

            pair.ToA.Restore();
            await AssertFollowsCutAtAsync(b, a, primary, OnPrimaryDisk, "d");
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }

    private static async Task AssertPromotionRefusedAsync(NodeProcess node)
    {
        var (status, body) = await node.PromoteAsync();
        Assert.True(status == 409 && body.Contains("defers to its peer", StringComparison.Ordinal), $"POST /promote on {node.Id} while it defers: {status} {body}");
    }

    /// <summary>
    /// <paramref name="follower"/> follows <paramref name="primary"/> in its epoch, its own records from
    /// <paramref name="cut"/> on cut and reported, and the primary holds exactly the run of <paramref name="prefix"/>
    /// messages below <paramref name="cut"/>.
    /// </summary>
    private static async Task AssertFollowsCutAtAsync(NodeProcess follower, NodeProcess primary, NodeStatus primaryStatus, long cut, string prefix)
    {
        var following = await follower.WaitForAsync(
            s => s.IsStandby && s.Epoch == primaryStatus.Epoch && s.Replica is { Connected: true } && s.ReplicaOf(Topic) is { } t && t.Durable == cut,
            $"{follower.Id} follows {primary.Id}");
        following.AssertCutAt(Topic, cut);
        var content = await TopicContent.ReadAsync(primary.ClientEndpoint, Topic);
        Assert.Equal(cut, content.Head);
        content.AssertRun(0, prefix, (int)cut);
    }

    /// <summary>
    /// The node became primary no sooner than the bound after it began to defer. Measured on the test's monotonic clock
    /// between two points whose order is certain: <paramref name="firstProbed"/>, when the proxy in front of its peer
    /// accepted the node's first connection since its start (it cannot defer before the peer answered a probe, and
    /// takes its own start of the wait after reading that answer), and <paramref name="seenPrimary"/>, taken once its
    /// status said primary (so after its promotion). Its event stamps are not used: the node writes its "deferring"
    /// line after it began counting and after it saved node.state (an fsync), so the gap between that line and its
    /// promotion can come out short of a wait that was right. A node that does not wait is primary a probe and a lease
    /// (or a promotion) after that first connection, far below the bound.
    /// </summary>
    private static void AssertDeferredForTheBound(NodeStatus primary, long firstProbed, long seenPrimary)
    {
        Assert.True(primary.EventTime(Deferring) is not null && primary.EventTime(BecamePrimary) is not null, $"no deferral or promotion among the events: {primary}");
        Assert.True(firstProbed != 0, $"{primary.NodeId} never connected to its peer's proxy");
        var waited = Stopwatch.GetElapsedTime(firstProbed, seenPrimary);
        Assert.True(waited >= s_peerWait, $"{primary.NodeId} was primary {waited.TotalMilliseconds:0} ms after its first connection to its peer, less than --peer-wait-ms {s_peerWait.TotalMilliseconds:0}");
    }
}
