using FastBroker.Client;
using FastBroker.Protocol;
using FastBroker.Replication;
using FastBroker.Testing;
using static FastBroker.ReplicationTests.Failover.IdempotentPublishes;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A new producer epoch reaches the standby before INIT_PRODUCER's OK when the pair acknowledges in a standby mode, so
/// a standby promoted the moment after the answer fences the instance it replaced, although the new one never wrote
/// (no record carries its epoch). The heartbeat interval is stretched from 100 ms to 6 s: the producers' checkpoint,
/// which also travels with the heartbeat, then almost never reaches the standby that way in the few ms between the
/// answer and the primary's end, so only an answer that waited for the standby makes it hold the epoch.
/// </summary>
public sealed class ProducerEpochFailoverTests
{
    private const string Topic = "epochs";
    private const ulong Id = 0x0E90_C400_0000_0017;

    private static readonly BrokerOptions s_standbyDurable = BrokerOptions.Default with
    {
        DefaultTopicOptions = TopicOptions.Default with { Acks = AckMode.StandbyDurable },
    };

    /// <summary>
    /// An instance of producer <see cref="Id"/> publishes one message (standby-durable: the standby holds it), then a
    /// new instance replaces it; both clients are closed again. Returns the old and the new epoch.
    /// </summary>
    private static async Task<(ulong Old, ulong Current)> ReplaceInstanceAsync(ReplicatedNode a, BrokerClientOptions clientOptions)
    {
        await using var oldClient = await BrokerClient.ConnectAsync(clientOptions);
        var old = a.Broker!.Producers.Fence(Id);
        Assert.Equal(0L, await oldClient.PublishAsync(Topic, "old0"u8.ToArray()).AsTask().WaitAsync(TimeSpan.FromSeconds(30))); // standby-durable: b holds it
        await using var currentClient = await BrokerClient.ConnectAsync(clientOptions);
        var current = a.Broker!.Producers.Fence(Id);
        Assert.True(current > old, $"the new instance's epoch {current} is above the old one's {old}");
        return (old, current);
    }

    private static ReplicationOptions SlowHeartbeat(ReplicationOptions options) =>
        options with { HeartbeatInterval = TimeSpan.FromSeconds(6), HeartbeatTimeout = TimeSpan.FromSeconds(12) };

    [Fact]
    public Task A_standby_promoted_right_after_a_new_instance_was_answered_fences_the_instance_it_replaced() =>
        ReplacedInstanceAsync(async (_, a, b, old, current) =>
        {
            // The new instance has its answer: the primary stops now, before its next heartbeat, and b takes over.
            await FailOverAsync(a, b);

            var sink = await AssertFencedAsync(b, old, current, "", " on the old primary, which answered the new instance before it died");
            Publish(b.Broker!, sink, 1, current, token: 2);
            await Eventually.TrueAsync(() => sink.Count == 2, "the new instance's publish is answered", TimeSpan.FromSeconds(30));
            Assert.Equal((2UL, 1L, BrokerErrorCode.None), sink.Outcomes.Where(o => o.Token == 2).Select(o => (o.Token, o.Offset, o.Error)).Single());
        });

    /// <summary>
    /// The new epoch reaches the standby in <c>producers.epochs</c>, which the promoted standby reads besides
    /// <c>producers.state</c>: with its copy of the latter lost (as a power loss can leave the primary's own file, whose
    /// periodic captures are renamed without an fsync), it still fences the instance the new one replaced.
    /// </summary>
    [Fact]
    public Task A_standby_promoted_without_its_copy_of_producers_state_fences_the_replaced_instance_with_producers_epochs() =>
        ReplacedInstanceAsync(async (dir, a, b, old, current) =>
        {
            await a.DisposeAsync();
            var copy = Path.Combine(dir.Combine("b"), ProducerCheckpointFile.Name);
            File.Delete(copy); // what b held of producers.state is gone: only the records and producers.epochs can fence
            await b.PromoteAsync();
            Assert.Equal(NodeRole.Primary, b.Role);

            await AssertFencedAsync(b, old, current, " without its producers.state", "");
        });

    /// <summary>
    /// Starts a standby-durable pair with a slow heartbeat, replaces an instance of <see cref="Id"/> on a
    /// (<see cref="ReplaceInstanceAsync"/>), then runs <paramref name="then"/> with the directory, both nodes and the old
    /// and the new epoch, before the pair is disposed.
    /// </summary>
    private static async Task ReplacedInstanceAsync(Func<TempDirectory, ReplicatedNode, ReplicatedNode, ulong, ulong, Task> then)
    {
        using var dir = new TempDirectory();
        var (a, b) = await InProcessPair.StartAsync(dir, s_standbyDurable, SlowHeartbeat);
        await using (a)
        await using (b)
        {
            var (old, current) = await ReplaceInstanceAsync(a, ProducerClient(a));
            await then(dir, a, b, old, current);
        }
    }

    /// <summary>
    /// On the promoted <paramref name="b"/>, the replaced instance's next publish (token 1) is fenced, as is its resume,
    /// and the new instance resumes at sequence 1: the sink that holds the fenced publish's answer.
    /// <paramref name="situation"/> and <paramref name="replaced"/> complete the failure message.
    /// </summary>
    private static async Task<Sink> AssertFencedAsync(ReplicatedNode b, ulong old, ulong current, string situation, string replaced)
    {
        var sink = new Sink();
        Publish(b.Broker!, sink, 1, old, token: 1); // the replaced instance goes on
        await Eventually.TrueAsync(() => sink.Count == 1, "the old instance's publish is answered", TimeSpan.FromSeconds(30));
        var outcome = sink.Outcomes.Single();
        Assert.True(
            outcome.Error == BrokerErrorCode.ProducerFenced,
            $"the replaced instance's publish on the promoted standby{situation}: {outcome.Error} at offset {outcome.Offset}, expected ProducerFenced (epoch {old} was replaced by {current}{replaced})");
        Assert.Equal(BrokerErrorCode.ProducerFenced, Assert.Throws<BrokerException>(() => b.Broker!.InitProducer(Id, old)).Code);
        Assert.Equal((1UL, current), b.Broker!.InitProducer(Id, current));
        return sink;
    }

    /// <summary>
    /// The answer waits for the standby's acknowledgement like a standby-mode publish: a standby that stops reading gets
    /// INIT_PRODUCER failed with <see cref="ErrorCode.NotReplicated"/> after the ack timeout (the client was never told
    /// the epoch, so no instance runs with one the standby may lack); once it reads again, the next one is answered.
    /// </summary>
    [Fact]
    public async Task A_new_epoch_the_standby_does_not_acknowledge_is_not_replicated_and_not_answered()
    {
        using var dir = new TempDirectory();
        TcpProxy? toA = null;

        // The first INIT_PRODUCER, which the standby never reads, fails after the 3 s ack timeout. Once the proxy
        // resumes, an INIT_PRODUCER (and the publish after it) is answered only if the standby reads the stalled
        // backlog, syncs it and acknowledges within that timeout, which a loaded machine's disk and scheduler may hold
        // up: one that fails NotReplicated then is asked again until the standby keeps up, so load can only make the
        // test slower.
        var (a, b) = await InProcessPair.StartAsync(dir, s_standbyDurable, o => SlowHeartbeat(o) with { AckTimeout = TimeSpan.FromSeconds(3) }, port => (toA = new TcpProxy(port)).Endpoint);
        await using var proxy = toA!;
        await using (a)
        await using (b)
        {
            var clientOptions = ProducerClient(a);
            proxy.Stall();
            var refused = await Assert.ThrowsAsync<BrokerClientException>(() => BrokerClient.ConnectAsync(clientOptions).AsTask());
            Assert.True(refused.ErrorCode == ErrorCode.NotReplicated, $"INIT_PRODUCER while the standby reads nothing: {refused.ErrorCode} ({refused.Message}), expected NotReplicated");
            Assert.Contains("standby did not acknowledge", refused.Message, StringComparison.Ordinal);

            proxy.Resume();
            await using var client = await ConnectOnceReplicatedAsync(clientOptions);
            var epoch = a.Broker!.Producers.Fence(Id);
            Assert.True(ProducerCheckpointFile.Holds(Path.Combine(dir.Combine("b"), ProducerCheckpointFile.EpochsName), epoch), $"b's producers.epochs holds epoch {epoch} once INIT_PRODUCER is answered");
            Assert.Equal(0L, await PublishOnceReplicatedAsync(client, "m0"u8.ToArray()));
        }
    }

    /// <summary>
    /// A client connected with <paramref name="options"/>: an INIT_PRODUCER the standby did not acknowledge within the
    /// ack timeout (a loaded machine held it up) is asked again, for up to a minute.
    /// </summary>
    private static async Task<BrokerClient> ConnectOnceReplicatedAsync(BrokerClientOptions options)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            try
            {
                return await BrokerClient.ConnectAsync(options).AsTask().WaitAsync(TimeSpan.FromSeconds(60));
            }
            catch (BrokerClientException e) when (e.ErrorCode == ErrorCode.NotReplicated && DateTime.UtcNow < deadline)
            {
            }
        }
    }

    /// <summary>The offset <paramref name="payload"/> is stored at, retried (same producer sequence) while the standby does not acknowledge it in time.</summary>
    private static async Task<long> PublishOnceReplicatedAsync(BrokerClient client, byte[] payload)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        var publish = client.PublishAsync(Topic, payload).AsTask();
        while (true)
        {
            try
            {
                return await publish.WaitAsync(TimeSpan.FromSeconds(60));
            }
            catch (BrokerClientException e) when (e.ErrorCode == ErrorCode.NotReplicated && e.Unconfirmed is { } unconfirmed && DateTime.UtcNow < deadline)
            {
                publish = client.RetryAsync(unconfirmed).AsTask();
            }
        }
    }

    /// <summary>Publishes <see cref="Id"/>'s <paramref name="sequence"/> under <paramref name="epoch"/>, confirmed once written.</summary>
    private static void Publish(Broker broker, IPublishConfirmSink sink, ulong sequence, ulong epoch, ulong token) =>
        IdempotentPublishes.Publish(broker, sink, Topic, Id, sequence, epoch, token, PublishDurability.Written);

    /// <summary>A client of <paramref name="node"/>'s server that is the idempotent producer <see cref="Id"/>, without reconnects.</summary>
    private static BrokerClientOptions ProducerClient(ReplicatedNode node) => BrokerClientOptions.Default with
    {
        Endpoints = [node.Server!.EndPoint.ToString()],
        ProducerId = Id,
        Reconnect = false,
        ConnectTimeout = TimeSpan.FromSeconds(30),
    };
}
