using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using FastBroker.Engine;
using FastBroker.Replication;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A primary stopped gracefully hands its broker state over with its journals: in <c>local</c> ack mode nothing waited
/// for the standby to apply a new producer epoch, a committed position or a work-queue ack, so the hand-over waits
/// until the standby has written every state file as it is at the stop. Two in-process nodes, no witness, the standby's
/// link through a <see cref="TcpProxy"/> that holds the state back (a standby a little behind) until the stopping
/// primary says it waits for it.
/// </summary>
public sealed class HandOverStateTests(ITestOutputHelper output)
{
    private const string Jobs = "handover.jobs";
    private const string Feed = "handover.feed";
    private const ulong Id = 0x0E90_C400_0000_0031;
    private const string HandingOver = "node 'a': stopping: waiting";

    [Fact]
    public async Task A_graceful_stop_in_local_mode_leaves_the_promoted_standby_the_newest_epoch_commit_and_ack()
    {
        using var dir = new TempDirectory();
        var lines = new ConcurrentQueue<string>();
        TcpProxy? toA = null;

        // No heartbeat (which also sends the state files) and no heartbeat timeout (which would end the held link)
        // falls in the few seconds the proxy holds the link; a 10 s ack timeout: the hand-over waits up to 5 s.
        var (a, b) = await InProcessPair.StartAsync(
            dir,
            BrokerOptions.Default,
            o => o with { HeartbeatInterval = TimeSpan.FromSeconds(2), HeartbeatTimeout = TimeSpan.FromSeconds(60), AckTimeout = TimeSpan.FromSeconds(10), Log = lines.Enqueue },
            port => (toA = new TcpProxy(port)).Endpoint);
        await using var proxy = toA!;
        await using (a)
        await using (b)
        {
            var broker = a.Broker!;
            for (var i = 0; i < 3; i++)
            {
                await broker.PublishAsync(Jobs, Encoding.ASCII.GetBytes($"j{i}"));
            }

            for (var i = 0; i < 10; i++)
            {
                await broker.PublishAsync(Feed, Encoding.ASCII.GetBytes($"f{i}"));
            }

            var (_, oldEpoch) = broker.InitProducer(Id);
            using var member = broker.JoinGroup(Jobs, "workers", prefetch: 10);
            var delivered = new List<Message>();
            using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
            {
                await foreach (var m in member.ReadAllAsync(cts.Token))
                {
                    delivered.Add(m);
                    if (delivered.Count == 3)
                    {
                        break;
                    }
                }
            }

            Assert.Equal(new long[] { 0, 1, 2 }, delivered.Select(m => m.Offset).ToArray());
            Assert.True(member.Ack(delivered[0]));
            using var keeper = broker.Subscribe(Feed, SubscriptionOptions.Default with { DurableName = "keeper", Start = StartPosition.Committed });
            keeper.Commit(Feed, 5);

            // b holds the records durably and the state so far: the hand-over has no record left to wait for.
            var copyOfB = dir.Combine("b");
            await Eventually.TrueAsync(
                () =>
                {
                    var status = NodeStatus.Parse(a.GetStatusJson());
                    return status.StandbyCaughtUp(Jobs) && status.StandbyCaughtUp(Feed)
                        && ProducerCheckpointFile.Holds(Path.Combine(copyOfB, ProducerCheckpointFile.EpochsName), oldEpoch)
                        && GroupAckStore.ReadFloor(Path.Combine(copyOfB, "topics", Jobs, "groups", "workers.state")) == 1
                        && File.Exists(Path.Combine(copyOfB, "subscriptions", "keeper.pos"));
                },
                "b holds both topics durably, the first epoch, the first ack and keeper's position file",
                TimeSpan.FromSeconds(30));

            // Held from here on: what a sends now reaches b only once a waits for it as it stops.
            proxy.Stall();
            var (_, newEpoch) = broker.InitProducer(Id); // local mode: answered at once
            keeper.Commit(Feed, 8);
            Assert.True(member.Ack(delivered[1]));

            var stopping = a.DisposeAsync().AsTask();
            var waited = Stopwatch.StartNew();
            while (!stopping.IsCompleted && !lines.Any(l => l.Contains(HandingOver, StringComparison.Ordinal)) && waited.Elapsed < TimeSpan.FromSeconds(30))
            {
                await Task.Delay(5);
            }

            var handedOver = lines.Any(l => l.Contains(HandingOver, StringComparison.Ordinal));
            if (handedOver)
            {
                proxy.Resume();
            }

            await stopping.WaitAsync(TimeSpan.FromSeconds(30));
            await b.PromoteAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(NodeRole.Primary, b.Role);
            var promoted = b.Broker!;

            string oldInstance;
            try
            {
                promoted.InitProducer(Id, oldEpoch);
                oldInstance = "resumed";
            }
            catch (BrokerException e)
            {
                oldInstance = e.Code.ToString();
            }

            long resumedAt;
            using (var sub = promoted.Subscribe(Feed, SubscriptionOptions.Default with { DurableName = "keeper", Start = StartPosition.Committed }))
            {
                resumedAt = await FirstOffsetAsync(sub.ReadAllAsync);
            }

            long firstDelivery;
            using (var worker = promoted.JoinGroup(Jobs, "workers", prefetch: 10))
            {
                firstDelivery = await FirstOffsetAsync(worker.ReadAllAsync);
            }

            var outcome = $"on the promoted b: the instance of epoch {oldEpoch} (replaced by {newEpoch} on a) {oldInstance}, keeper resumed at {resumedAt}, the group's first delivery was offset {firstDelivery}";
            output.WriteLine(outcome);
            Assert.True(
                oldInstance == nameof(BrokerErrorCode.ProducerFenced) && resumedAt == 8 && firstDelivery == 2,
                $"{outcome}; expected ProducerFenced, 8 (the commit before the stop) and 2 (offset 1 was acked before the stop). a waited for b as it stopped: {handedOver}\n{string.Join('\n', lines)}");
            Assert.Equal(newEpoch, promoted.InitProducer(Id, newEpoch).Epoch); // the new instance resumes there
        }
    }

    private static async Task<long> FirstOffsetAsync(Func<CancellationToken, IAsyncEnumerable<Message>> read)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await foreach (var m in read(cts.Token))
        {
            return m.Offset;
        }

        return -1;
    }
}
