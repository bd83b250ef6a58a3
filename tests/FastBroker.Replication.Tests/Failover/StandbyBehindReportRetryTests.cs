using System.Text;
using FastBroker.Replication;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// With <c>DegradeToLocal</c> and a witness, a primary whose standby left confirms standby-mode publishes as local only
/// once the witness records the standby behind. A report the witness does not answer is tried again: before, one failed
/// report left the held publish waiting for the ack timeout and failing with NotReplicated (a CI flake of
/// <see cref="GracefulHandoverTests"/> under load), although the witness could record it a moment later.
/// </summary>
public sealed class StandbyBehindReportRetryTests
{
    private const string Topic = "behind.orders";

    [Fact]
    public async Task A_standby_behind_report_the_witness_missed_is_sent_again_and_the_held_publish_degrades()
    {
        using var dir = new TempDirectory();
        await using var witness = await WitnessFixture.StartAsync();
        await using var toWitness = new TcpProxy(int.Parse(witness.Endpoint.Split(':')[1], System.Globalization.CultureInfo.InvariantCulture));
        // A long lease (heartbeat timeout 6 s: a 12 s lease) outlives the witness being cut off for a moment, and the
        // ack timeout is far beyond the wait below: the publish may only succeed through a repeated report.
        var (pair, a, startedB) = await DegradingWitnessedPair.StartAsync(dir, toWitness.Endpoint, Topic, o => o with { HeartbeatTimeout = TimeSpan.FromSeconds(6), AckTimeout = TimeSpan.FromSeconds(120) });
        var lines = pair.Lines;
        ReplicatedNode? b = startedB;
        try
        {
            // The test starts from a standby attached and in sync. Once under CI load a's link to b dropped right after
            // b attached, and a had the witness record b behind before the cut below, so the held publish degraded at
            // once and no report could fail: b reattaches within its heartbeat timeout and a reports it in sync again.
            await Eventually.TrueAsync(() => NodeStatus.Parse(a.GetStatusJson()) is { StandbyConfirming: true, Standby.WitnessRecordsBehind: false }, $"b confirms a's publishes and is in sync:\n{string.Join('\n', lines)}");

            // The witness cannot be reached when b leaves: a's report that b is behind fails.
            toWitness.Cut();
            await b.DisposeAsync();
            b = null;
            await Eventually.TrueAsync(() => NodeStatus.Parse(a.GetStatusJson()).Standby is { Attached: false }, "a sees b gone");
            var held = a.Broker!.PublishAsync(Topic, Encoding.ASCII.GetBytes("while-behind")).AsTask();
            await Eventually.TrueAsync(() => lines.Any(l => l.Contains("could not record it behind", StringComparison.Ordinal)), $"a's report fails:\n{string.Join('\n', lines)}");
            Assert.False(held.IsCompleted, "confirmed before the witness recorded the standby behind");

            toWitness.Restore();
            var offset = await held.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal(1, offset);
            Assert.Contains(lines, l => l.StartsWith("a: ", StringComparison.Ordinal) && l.Contains("the witness records the standby behind", StringComparison.Ordinal));
            Assert.True(NodeStatus.Parse(a.GetStatusJson()).Standby is { WitnessRecordsBehind: true }, a.GetStatusJson());
        }
        finally
        {
            await a.DisposeAsync();
            if (b is not null)
            {
                await b.DisposeAsync();
            }
        }
    }
}
