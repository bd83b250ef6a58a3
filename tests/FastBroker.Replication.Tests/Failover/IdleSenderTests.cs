using FastBroker.Replication.Internal;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// An idle primary's sender thread sleeps until its next heartbeat: a pass per heartbeat (and per wake-up), not a
/// spin. Counted through the pass hook (<see cref="PrimaryReplicator.ThreadPassed"/>) against the heartbeats sent.
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class IdleSenderTests
{
    private const int Heartbeats = 20;

    [Fact]
    public async Task An_idle_sender_passes_about_once_per_heartbeat()
    {
        using var dir = new TempDirectory();
        var (a, b) = await InProcessPair.StartAsync(dir, BrokerOptions.Default, o => o with
        {
            HeartbeatInterval = TimeSpan.FromMilliseconds(50),
            HeartbeatTimeout = TimeSpan.FromSeconds(30),
        });
        await using var primaryNode = a;
        await using var standbyNode = b;
        long passes = 0;
        a.Replicator!.ThreadPassed = t =>
        {
            if (t == ReplicationThread.Sender)
            {
                Interlocked.Increment(ref passes);
            }
        };
        var link = a.Replicator.Link!;
        var first = link.HeartbeatsSent;
        var before = Interlocked.Read(ref passes);
        Assert.True(
            Eventually.TryWait(() => link.HeartbeatsSent >= first + Heartbeats, TimeSpan.FromSeconds(60)),
            $"{Heartbeats} heartbeats sent within 60 s (sent {link.HeartbeatsSent - first})");
        var sent = link.HeartbeatsSent - first;
        var counted = Interlocked.Read(ref passes) - before;
        Assert.Same(link, a.Replicator.Link);

        // A pass per heartbeat, and one per wake-up (an ACK that starts the link's stay-up count, a state change):
        // a few per heartbeat at most. A spin is thousands.
        Assert.True(counted <= 5 * (sent + 1), $"the idle sender passed {counted} times for {sent} heartbeats");
    }
}
