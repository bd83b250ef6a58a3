using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using FastBroker.Engine;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A work-queue ack reaches the standby's copy of the group state within the 20 ms spacing of its sends, however soon
/// after the last send it came: an ack made within those 20 ms used to leave the group state marked changed without
/// waking the replicator again, so on an idle primary it (and every ack after it) waited for the next record, commit
/// or heartbeat. Two in-process nodes, no witness, a 30 s heartbeat interval.
/// </summary>
public sealed class GroupStateShipTests(ITestOutputHelper output)
{
    private const string Jobs = "groupship.jobs";
    private const int Count = 8;

    private static readonly TimeSpan s_interval = TimeSpan.FromSeconds(30);

    /// <summary>Far below the 30 s heartbeat, far above eight sends 20 ms apart on a loaded machine.</summary>
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Acks_made_within_20_ms_of_the_last_group_state_send_reach_the_standby_long_before_the_heartbeat()
    {
        using var dir = new TempDirectory();
        var lines = new ConcurrentQueue<string>();
        var (a, b) = await InProcessPair.StartAsync(dir, BrokerOptions.Default, o => o with
        {
            HeartbeatInterval = s_interval,
            HeartbeatTimeout = s_interval * 2,
            Log = lines.Enqueue,
        });
        await using (a)
        await using (b)
        {
            var broker = a.Broker!;
            for (var i = 0; i < Count; i++)
            {
                await broker.PublishAsync(Jobs, Encoding.ASCII.GetBytes($"j{i}"));
            }

            using var member = broker.JoinGroup(Jobs, "workers", prefetch: Count);
            var delivered = new List<Message>();
            using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
            {
                await foreach (var m in member.ReadAllAsync(cts.Token))
                {
                    delivered.Add(m);
                    if (delivered.Count == Count)
                    {
                        break;
                    }
                }
            }

            await Eventually.TrueAsync(() => NodeStatus.Parse(a.GetStatusJson()).StandbyCaughtUp(Jobs), "b holds the jobs", TimeSpan.FromSeconds(30));

            // Each ack as soon as b's copy shows the one before: a few ms after the send that carried it, within the
            // 20 ms the replicator leaves between two sends.
            var copy = Path.Combine(dir.Combine("b"), "topics", Jobs, "groups", "workers.state");
            var clock = Stopwatch.StartNew();
            var reachedAt = new List<long>();
            for (var i = 0; i < Count; i++)
            {
                Assert.True(member.Ack(delivered[i]));
                var floor = i + 1;
                var left = s_deadline - clock.Elapsed;
                try
                {
                    await Eventually.TrueAsync(() => GroupAckStore.ReadFloor(copy) == floor, $"the ack of offset {i} reaches b's copy", left > TimeSpan.Zero ? left : TimeSpan.Zero);
                }
                catch (TimeoutException)
                {
                    Assert.Fail($"the ack of offset {i} did not reach b's copy of the group state within {s_deadline.TotalSeconds:0} s of the first ack (heartbeat interval {s_interval.TotalSeconds:0} s): its floor is {GroupAckStore.ReadFloor(copy)?.ToString() ?? "absent"}, reached at ms [{string.Join(", ", reachedAt)}]\n{string.Join('\n', lines)}");
                }

                reachedAt.Add(clock.ElapsedMilliseconds);
            }

            output.WriteLine($"{Count} acks reached b's copy at ms [{string.Join(", ", reachedAt)}] with a {s_interval.TotalSeconds:0} s heartbeat interval");
        }
    }
}
