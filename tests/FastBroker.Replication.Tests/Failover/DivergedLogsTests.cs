using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// Both nodes lose power, and each loses the unflushed tail of a different topic: a holds more of one, b more of the
/// other, in the same epoch. The logs have diverged: whichever took over on its own (the lease, or its configured role)
/// would cut records only the other holds when that one followed, and they may have been confirmed. Neither takes over
/// while both answer; each says so, nothing is cut, and an operator's promotion decides (and the cut is reported).
/// </summary>
[Collection(nameof(PairProcessCollection))]
public sealed class DivergedLogsTests(ITestOutputHelper output)
{
    private const string OnlyA = "diverged.a";
    private const string OnlyB = "diverged.b";
    private const int Confirmed = 20;
    private const int Kept = 12;

    private static readonly string[] s_heartbeat = ["--heartbeat-timeout-ms", "2000"];

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Neither_node_takes_over_on_its_own_when_each_holds_records_the_other_lacks(bool witness)
    {
        await using var pair = new PairHarness();
        try
        {
            var (a, b) = await StartDivergedAsync(pair, witness, s_heartbeat);

            var onA = await WaitDivergedAsync(a);
            var onB = await WaitDivergedAsync(b);
            var line = onA.Events.First(e => e.Contains("the logs have diverged", StringComparison.Ordinal));
            output.WriteLine(line);
            Assert.Contains($"this node is ahead on '{OnlyA}' to {Confirmed} against {Kept}, peer 'b' on '{OnlyB}' to {Confirmed} against {Kept}", line, StringComparison.Ordinal);
            Assert.Contains("promote the node whose records are to be kept", line, StringComparison.Ordinal);
            foreach (var node in new[] { onA, onB })
            {
                Assert.DoesNotContain(node.Events, e => e.Contains("': Primary (epoch", StringComparison.Ordinal) || e.Contains("cut at offset", StringComparison.Ordinal));
            }

            // Once both have said so neither has become primary (checked again, after the line): the operator keeps b's log.
            foreach (var node in new[] { a, b })
            {
                var now = await node.TryStatusAsync();
                Assert.True(now is { IsStandby: true }, $"{node.Id} is still standby: {now?.Json}");
            }

            // With a witness, a's lease from before the power loss may not have run out yet: the promotion is refused
            // until it has, and the operator asks again.
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            var (status, body) = await b.PromoteAsync();
            while (witness && status == 409 && body.Contains("still alive", StringComparison.Ordinal) && DateTime.UtcNow < deadline)
            {
                await b.WaitForAsync(s => s.IsStandby, "b is standby again after the refused promotion");
                (status, body) = await b.PromoteAsync();
            }

            Assert.True(status == 200, $"POST /promote on b: {status} {body}");
            await b.WaitForAsync(s => s.IsPrimary, "b is primary");
            var follower = await a.WaitForAsync(
                s => s.IsStandby && s.Replica is { Connected: true, PrimaryId: "b" } && s.ReplicaOf(OnlyB) is { Durable: Confirmed },
                "a follows b and copies diverged.b's records");
            follower.AssertCutAt(OnlyA, Kept);
            Assert.Equal(Confirmed, (await TopicContent.ReadAsync(b.ClientEndpoint, OnlyB)).Head);
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }

    /// <summary>
    /// The pair waits diverged; then b's data directory is wiped (b is rebuilt from nothing) and b starts again. Its log
    /// no longer diverges from a's (it holds nothing a lacks), and it defers to a: nothing would be cut, so a, ahead,
    /// takes over (the lease), and b follows it and copies a's log, without an operator. A PeerWait far longer than the
    /// test waits keeps b from taking over itself once its deferral runs out.
    /// </summary>
    [Fact]
    public async Task The_wait_ends_when_the_peer_returns_wiped_and_the_node_ahead_takes_over()
    {
        await using var pair = new PairHarness();
        try
        {
            var (a, b) = await StartDivergedAsync(pair, witness: true, [.. s_heartbeat, "--peer-wait-ms", "600000"]);
            await WaitDivergedAsync(a);
            await WaitDivergedAsync(b);

            b.Kill();
            Directory.Delete(b.DataDirectory, recursive: true);
            await b.StartAsync();

            var primary = await a.WaitForAsync(s => s.IsPrimary, "a, ahead of the wiped b on every topic, takes over");
            Assert.Contains(primary.Events, e => e.Contains("no longer diverge", StringComparison.Ordinal));
            await b.WaitForAsync(
                s => s.IsStandby && s.Replica is { Connected: true, PrimaryId: "a" } && s.ReplicaOf(OnlyA) is { Durable: Confirmed } && s.ReplicaOf(OnlyB) is { Durable: Kept },
                "b follows a and copies its log");
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }

    /// <summary>
    /// b's one probe of a at its start finds a unreachable (the link b reaches a through refuses every connection), so
    /// b, a configured standby, waits as standby for a primary without having compared the logs. a reaches b, sees
    /// the logs diverged and waits as standby too. Once b reaches a, a refuses b's link (it is not primary): b probes
    /// a again, sees the logs diverged, and says so as it would have at its start, its <c>/primary</c> reason too; and
    /// neither takes over.
    /// </summary>
    [Fact]
    public async Task A_standby_whose_start_up_probe_missed_its_peer_reports_the_divergence_once_the_peer_answers()
    {
        await using var pair = new PairHarness();
        try
        {
            var (a, b) = await StartDivergedAsync(pair, witness: false, s_heartbeat, beforeStart: () => pair.ToA!.Cut());
            await b.WaitForAsync(
                s => s.IsStandby && s.Events.Any(e => e.Contains("peer unreachable; waiting to follow it", StringComparison.Ordinal)),
                "b, its probe of a refused, waits as standby for a primary");
            Assert.True(pair.ToA!.Refused > 0, "b's probe of a went through the cut proxy");
            await WaitDivergedAsync(a);

            pair.ToA.Restore();
            var onB = await WaitDivergedAsync(b);
            var line = onB.Events.First(e => e.Contains("the logs have diverged", StringComparison.Ordinal));
            output.WriteLine(line);
            Assert.Contains($"this node is ahead on '{OnlyB}' to {Confirmed} against {Kept}, peer 'a' on '{OnlyA}' to {Confirmed} against {Kept}", line, StringComparison.Ordinal);
            Assert.Contains(onB.Events, e => e.Contains("the logs of this node and peer 'a' have diverged: waiting for an operator to promote one", StringComparison.Ordinal));
            var primaryCheck = await AdminChecks.WaitForAsync(b.AdminEndpoint, "/primary", System.Net.HttpStatusCode.ServiceUnavailable, "b's /primary says why it waits");
            Assert.Equal("standby waiting for an operator to promote one node: its log and its peer's have diverged", AdminChecks.Reason(primaryCheck));
            foreach (var node in new[] { a, b })
            {
                var now = await node.TryStatusAsync();
                Assert.True(now is { IsStandby: true }, $"{node.Id} is still standby: {now?.Json}");
                Assert.DoesNotContain(now!.Events, e => e.Contains("': Primary (epoch", StringComparison.Ordinal) || e.Contains("cut at offset", StringComparison.Ordinal));
            }
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }

    /// <summary>
    /// A pair whose logs have diverged: records of two topics confirmed, then both lose power, and each loses the tail of
    /// a different topic (a is ahead on diverged.a, b on diverged.b); both started again, after
    /// <paramref name="beforeStart"/> when given (the nodes then peered through proxies: <see cref="PairHarness.ToA"/>).
    /// </summary>
    private static async Task<(NodeProcess A, NodeProcess B)> StartDivergedAsync(PairHarness pair, bool witness, string[] options, Action? beforeStart = null)
    {
        var proxied = beforeStart is not null;
        var (a, b, _) = witness ? await pair.StartWitnessedPairAsync(proxyWitnessOfA: false, proxied, options) : await pair.StartConfiguredPairAsync(options, options, proxied);
        await PrefixedMessages.PublishAsync(a, OnlyA, "x", Confirmed, FastBroker.Protocol.Durability.StandbyDurable);
        await PrefixedMessages.PublishAsync(a, OnlyB, "y", Confirmed, FastBroker.Protocol.Durability.StandbyDurable);
        b.Kill();
        a.Kill();
        PowerLoss.LosePageCache(a, OnlyB, Kept);
        PowerLoss.LosePageCache(b, OnlyA, Kept);
        beforeStart?.Invoke();
        await a.StartAsync();
        await b.StartAsync();
        return (a, b);
    }

    private static Task<NodeStatus> WaitDivergedAsync(NodeProcess node) =>
        node.WaitForAsync(s => s.IsStandby && s.Events.Any(e => e.Contains("the logs have diverged", StringComparison.Ordinal)), $"{node.Id} sees the logs diverged and waits as standby");
}
