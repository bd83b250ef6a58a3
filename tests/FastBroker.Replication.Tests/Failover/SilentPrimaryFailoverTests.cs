using System.Diagnostics;
using FastBroker.Client;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A primary that stops dead without closing its connections (a frozen VM, a host that lost power, a kernel panic)
/// sends no FIN: the standby's link stays open and silent. The standby must take that silence as the heartbeat
/// timeout, not wait for TCP to give up. Here the primary is frozen with SIGSTOP; when it thaws it has lost its
/// lease and must not be a second primary of its epoch.
/// </summary>
[Collection(nameof(PairProcessCollection))]
public sealed class SilentPrimaryFailoverTests(ITestOutputHelper output)
{
    private const string Topic = "silent.orders";

    [Fact]
    public async Task A_standby_whose_primary_goes_silent_takes_over_and_the_thawed_primary_steps_down()
    {
        await using var pair = new PairHarness();
        NodeProcess? frozen = null;
        try
        {
            // A 2 s heartbeat timeout (4 s lease), not 500 ms: on a loaded machine a node the scheduler stalls for that long
            // is taken for dead before the test's own freeze (a primary past its 1 s lease fences itself; a standby silent
            // for 2 s is detached and, with --degrade-to-local, may be recorded behind and kept from the lease). The freeze
            // still lasts until b is primary, which the witness allows only once a's lease has run out, and a frozen
            // process's kernel keeps the link open (it even answers keepalives): b can only take its silence for death.
            var (a, b, before) = await pair.StartWitnessedPairAsync("--acks", "standby-durable", "--heartbeat-timeout-ms", "2000", "--degrade-to-local");

            await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with
            {
                Endpoints = [a.ClientEndpoint, b.ClientEndpoint],
                ReconnectTimeout = TimeSpan.FromSeconds(60),
                HeartbeatInterval = TimeSpan.FromMilliseconds(200), // the client, too, must notice a silent server
            });
            var confirmed = 0;
            for (; confirmed < 20; confirmed++)
            {
                Assert.Equal(confirmed, await client.PublishAsync(Topic, BitConverter.GetBytes(confirmed)));
            }

            var linkDownsBefore = LinkDowns(await b.WaitForAsync(s => s.IsStandby, "b follows a"));
            a.Freeze();
            frozen = a;
            var sw = Stopwatch.StartNew();
            var after = await b.WaitForAsync(s => s.IsPrimary, "b takes over although its link to the frozen a never closed", TimeSpan.FromSeconds(60));
            output.WriteLine($"b primary at epoch {after.Epoch} {sw.ElapsedMilliseconds} ms after the freeze");
            Assert.True(after.Epoch > before.Epoch, $"epoch {after.Epoch} after {before.Epoch}");

            // b's first request for the lease comes before a's has run out (b heard a 2 s ago; a renewed its 4 s lease
            // every second), so the witness denies it and says how long a's lease has left. b asks again then, without
            // first trying its link to the frozen a once more: that reconnection waited out twice the heartbeat
            // timeout in the handshake (a frozen process's kernel accepts the connection) and added a second
            // "link down" line, and b was primary about 7 s after the freeze instead of about 4 s.
            Assert.True(LinkDowns(after) - linkDownsBefore == 1, "b tried its link to the frozen a again before it took over:\n" + string.Join('\n', after.Events));
            Assert.Equal(confirmed, await client.PublishAsync(Topic, "on b"u8)); // everything confirmed is there, once
            output.WriteLine($"the client's publish confirmed by b {sw.ElapsedMilliseconds} ms after the freeze");

            // The old primary thaws: its lease ran out while it was frozen, so it must not serve as a primary again.
            a.Freeze(false);
            frozen = null;
            await a.WaitForAsync(s => s.IsStandby && s.Replica is { Connected: true, PrimaryId: "b" }, "the thawed a follows b");
            output.WriteLine($"the thawed a follows b {sw.ElapsedMilliseconds} ms after the freeze");
            var sb = await b.WaitForAsync(s => s.IsPrimary, "b is still primary");
            Assert.Equal(after.Epoch, sb.Epoch);
            Assert.Equal(confirmed + 1, await client.PublishAsync(Topic, "after the thaw"u8));
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
        finally
        {
            frozen?.Freeze(false); // so that the harness can kill and reap it
        }
    }

    private static int LinkDowns(NodeStatus status) => status.Events.Count(e => e.Contains("standby: link down", StringComparison.Ordinal));
}
