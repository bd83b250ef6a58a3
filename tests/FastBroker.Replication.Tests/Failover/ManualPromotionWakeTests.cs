using System.Diagnostics;
using FastBroker.Replication;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A manual promotion asked while the standby pauses between two attempts to follow its (gone) primary ends the pause:
/// the pause is half a heartbeat interval, and with a 60 s interval a promotion that waited for it took 30 s. Two
/// in-process nodes on 127.0.0.1, no witness.
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class ManualPromotionWakeTests(ITestOutputHelper output)
{
    private static readonly TimeSpan s_interval = TimeSpan.FromSeconds(60);

    /// <summary>Far below the 30 s pause, far above a promotion (open the journals, start the server) on a loaded machine.</summary>
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task A_promotion_asked_while_the_standby_pauses_between_link_attempts_does_not_wait_for_the_pause()
    {
        using var dir = new TempDirectory();
        var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var (a, b) = await InProcessPair.StartAsync(dir, BrokerOptions.Default, o => o with
        {
            HeartbeatInterval = s_interval,
            HeartbeatTimeout = s_interval * 2,
            Log = lines.Enqueue,
        });
        await using (a)
        await using (b)
        {
            await a.Broker!.PublishAsync("wake.orders", "m0"u8.ToArray());
            await Eventually.TrueAsync(() => NodeStatus.Parse(a.GetStatusJson()).StandbyCaughtUp("wake.orders"), "b follows a and holds its message", TimeSpan.FromSeconds(30));
            var epoch = a.Epoch;

            // The primary goes; b's link ends (one attempt counted), and b pauses before the next attempt.
            await a.DisposeAsync();
            await Eventually.TrueAsync(() => b.LinkAttempts >= 1, "b's link to the stopped primary ends", TimeSpan.FromSeconds(30));

            var promoting = Stopwatch.StartNew();
            var promotion = b.PromoteAsync();
            var first = await Task.WhenAny(promotion, Task.Delay(s_deadline));
            Assert.True(
                first == promotion,
                $"PromoteAsync did not complete within {s_deadline.TotalSeconds:0} s (the standby's pause between link attempts is {(s_interval / 2).TotalSeconds:0} s):\n{string.Join('\n', lines)}");
            Assert.True(await promotion > epoch, $"the new epoch must be above {epoch}");
            Assert.Equal(NodeRole.Primary, b.Role);
            Assert.NotNull(b.Server);
            output.WriteLine($"promoted in {promoting.ElapsedMilliseconds} ms with a {s_interval.TotalSeconds:0} s heartbeat interval");
        }
    }
}
