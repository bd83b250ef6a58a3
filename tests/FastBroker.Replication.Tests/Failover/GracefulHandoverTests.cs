using System.Text;
using FastBroker.Replication;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A primary stopped gracefully hands over: before it releases the witness lease it lets the attached standby flush
/// everything it wrote, and if the witness records that standby behind (the primary confirmed publishes as local while
/// it was away) it reports it in sync first. Before, a primary stopped within a heartbeat of its standby's return
/// released the lease with the standby still recorded behind, and the witness then kept the lease from the standby,
/// which held everything: the pair stayed without a primary until an operator forced a promotion.
/// </summary>
public sealed class GracefulHandoverTests
{
    private const string Topic = "handover.orders";
    private const int Degraded = 50;

    [Fact]
    public async Task A_primary_stopped_right_after_its_behind_standby_returned_reports_it_in_sync_and_the_standby_takes_over()
    {
        using var dir = new TempDirectory();
        await using var witness = await WitnessFixture.StartAsync();

        // The periodic in-sync report runs once a heartbeat (the second one after the standby attaches): 3 s here, so
        // the stop below comes before it, as a stop within a heartbeat of the standby's return does.
        var (pair, a, startedB) = await DegradingWitnessedPair.StartAsync(dir, witness.Endpoint, Topic, o => o with
        {
            HeartbeatInterval = TimeSpan.FromSeconds(3),
            HeartbeatTimeout = TimeSpan.FromSeconds(6),
            AckTimeout = TimeSpan.FromSeconds(30),
        });
        var lines = pair.Lines;
        ReplicatedNode? b = startedB;
        try
        {
            // b stops; a confirms the next publishes as local once the witness records b behind.
            await b.DisposeAsync();
            await Eventually.TrueAsync(() => NodeStatus.Parse(a.GetStatusJson()).Standby is { Attached: false }, "a sees b gone");
            for (var i = 0; i < Degraded; i++)
            {
                await a.Broker!.PublishAsync(Topic, Encoding.ASCII.GetBytes($"d{i:D4}")).AsTask().WaitAsync(TimeSpan.FromSeconds(60));
            }

            var degraded = NodeStatus.Parse(a.GetStatusJson());
            Assert.True(degraded.Standby is { Degraded: Degraded, WitnessRecordsBehind: true }, degraded.Json);

            // b returns and a stops as soon as b is attached again, before its watch would report b in sync.
            b = await pair.StartBAsync();
            await Eventually.TrueAsync(() => NodeStatus.Parse(a.GetStatusJson()).Standby is { Attached: true }, "b follows a again");
            var epochA = a.Epoch;
            await a.DisposeAsync();

            Assert.True(await b.WaitForRoleAsync(NodeRole.Primary, TimeSpan.FromSeconds(60)), $"b takes over from the stopped primary:\n{string.Join('\n', lines)}");
            Assert.True(b.Epoch > epochA, $"b's epoch {b.Epoch} must be newer than a's {epochA}");
            Assert.True(
                lines.Any(l => l.StartsWith("a: ", StringComparison.Ordinal) && l.Contains("stopping: the witness records standby 'b' in sync", StringComparison.Ordinal)),
                $"a did not report b in sync as it stopped:\n{string.Join('\n', lines)}");

            // b holds everything a confirmed, the local confirmations included.
            var content = await TopicContent.ReadAsync($"127.0.0.1:{b.Server!.EndPoint.Port}", Topic);
            Assert.Equal(Degraded + 1, content.Head - content.Tail);
            Assert.Equal("first", content.At(content.Tail));
            content.AssertRun(content.Tail + 1, "d", Degraded);
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
