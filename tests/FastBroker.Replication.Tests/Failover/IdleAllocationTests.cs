using FastBroker.Replication.Internal;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// An idle pair feeds no garbage collector: with nothing published and no state changing, a heartbeat allocates
/// nothing on any replication thread — the primary's sender (its check of the state files, the RETAINED and HEARTBEAT
/// frames), its ack reader (the heartbeats' answers, the keep-alives), the standby's receive thread (the heads of each
/// heartbeat, its answer) and durable thread (its keep-alive). Each thread reads its own counter
/// (<see cref="GC.GetAllocatedBytesForCurrentThread"/>) in its pass hook (<see cref="ThreadMeter"/>) over many
/// heartbeats, after a warm-up longer than any one-off (the relisting of <c>subscriptions/</c> 2 s after a listing
/// too close to its last write time, <c>StateScan</c>). The rolling pass (every state file read once per
/// <see cref="PrimaryReplicator.StateRescanInterval"/>, a per-period cost) is an hour apart here.
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class IdleAllocationTests(ITestOutputHelper output)
{
    private const string Topic = "idle.alloc";

    /// <summary>At least 3 s at <see cref="s_heartbeat"/>: past the 2 s relisting of <c>subscriptions/</c>.</summary>
    private const int WarmUp = 300;

    private const int Measured = 300;

    /// <summary>Per thread over <see cref="Measured"/> heartbeats: one object per heartbeat (≥ 24 B) is 7 KB.</summary>
    private const long Bound = 1024;

    private static readonly TimeSpan s_heartbeat = TimeSpan.FromMilliseconds(10);

    [Fact]
    public async Task An_idle_pair_allocates_nothing_per_heartbeat_on_any_replication_thread()
    {
        using var dir = new TempDirectory();
        var (a, b) = await InProcessPair.StartAsync(dir, BrokerOptions.Default, o => o with
        {
            HeartbeatInterval = s_heartbeat,
            HeartbeatTimeout = TimeSpan.FromSeconds(30),
        });
        await using var primaryNode = a;
        await using var standbyNode = b;
        a.Replicator!.StateRescanInterval = TimeSpan.FromHours(1);
        var broker = a.Broker!;

        // Every kind of state file the check looks at: the producers' checkpoint and epochs, a position file.
        await PositionCopies.PublishAsync(broker, Topic, 5);
        broker.InitProducer(0x1D1E_A110_C000_0001);
        using var sub = broker.Subscribe(Topic, SubscriptionOptions.Default with { DurableName = "idle", Start = StartPosition.Committed });
        sub.Commit(Topic, 3);
        await Eventually.TrueAsync(
            () => PositionCopies.PositionIn(dir.Combine("b"), "subscriptions/idle.pos", Topic) == 3,
            "b holds the subscription's position 3",
            TimeSpan.FromSeconds(30));

        var link = a.Replicator.Link!;
        await HeartbeatsAsync(link, WarmUp, "warm-up");
        var meter = new ThreadMeter();
        b.Replica!.ThreadPassed = meter.Passed;
        a.Replicator.ThreadPassed = meter.Passed;
        meter.Measuring = true;
        await HeartbeatsAsync(link, Measured, "measured");
        meter.Measuring = false;
        a.Replicator.ThreadPassed = null;
        b.Replica.ThreadPassed = null;

        Assert.Same(link, a.Replicator.Link); // one link throughout: its threads are those measured
        var report = meter.Report();
        output.WriteLine(report);
        var threads = new[] { ReplicationThread.Sender, ReplicationThread.AckReader, ReplicationThread.StandbyReceive, ReplicationThread.StandbyDurable };
        foreach (var thread in threads)
        {
            var slot = (int)thread;
            Assert.True(meter.Passes(slot) >= 2, $"{thread} measured over the window: {report}");
            Assert.True(meter.Threads(slot) <= 1, $"{thread} ran on one thread: {report}");
            Assert.True(meter.Bytes(slot) < Bound, $"{thread} allocated {meter.Bytes(slot)} B over {Measured} idle heartbeats: {report}");
        }
    }

    private static async Task HeartbeatsAsync(StandbyLink link, int count, string what)
    {
        var from = link.HeartbeatsSent;
        await Eventually.TrueAsync(() => link.HeartbeatsSent >= from + count, $"{count} heartbeats ({what})", TimeSpan.FromSeconds(120));
    }
}
