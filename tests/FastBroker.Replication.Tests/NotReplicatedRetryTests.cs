using FastBroker.Client;
using FastBroker.Engine;
using FastBroker.Protocol;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests;

/// <summary>
/// A standby-mode publish the standby did not acknowledge in time fails with NotReplicated although the primary wrote
/// it. Retried through <see cref="BrokerClient.RetryAsync"/> it keeps its producer sequence: the broker never stores it
/// twice, and confirms the retry (with the original offset) only once the standby holds that offset. An embedded
/// primary (a <see cref="ReplicationGate"/>, no standby process) behind a real server on 127.0.0.1; the test plays the
/// standby's acknowledgements.
/// </summary>
public sealed class NotReplicatedRetryTests
{
    private const string Topic = "orders";
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_NotReplicated_publish_retried_is_stored_once_and_confirmed_only_when_the_standby_has_the_original()
    {
        using var dir = new TempDirectory("fastbroker-notreplicated");
        // The two publishes the standby never acknowledges fail after the 3 s ack timeout. Order-2 below is confirmed
        // only if the test's own ack comes within that timeout of its write, through a poll of the head that a loaded
        // machine may hold up: when it does not, order-2 fails NotReplicated as well, and its retry, which the standby
        // then holds, is confirmed (stored once all the same), so load can only make the test slower.
        var gate = new ReplicationGate(TimeSpan.FromSeconds(3), degradeToLocal: false);
        var options = BrokerOptions.Default with
        {
            DataDirectory = dir.Path,
            TimerResolution = TimeSpan.FromMilliseconds(5),
            DefaultTopicOptions = TopicOptions.Default with { Acks = AckMode.StandbyReceived, SegmentBytes = 4L << 20 },
        };
        await using var broker = Broker.Open(options, gate);
        await using var server = await BrokerServer.StartAsync(broker, ServerOptions.Default with { Host = "127.0.0.1", Port = 0 });
        await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [$"127.0.0.1:{server.EndPoint.Port}"] });

        var refused = await Assert.ThrowsAsync<BrokerClientException>(() => client.PublishAsync(Topic, "order-1"u8).AsTask().WaitAsync(s_deadline));
        Assert.Equal(ErrorCode.NotReplicated, refused.ErrorCode);
        var unconfirmed = Assert.IsType<UnconfirmedPublish>(refused.Unconfirmed);
        Assert.Equal((Topic, "order-1", client.ProducerId, 0UL), (unconfirmed.Topic, System.Text.Encoding.UTF8.GetString(unconfirmed.Payload.Span), unconfirmed.ProducerId, unconfirmed.ProducerSequence));
        Assert.Equal(1, Head(broker)); // written on the primary all the same

        // The standby is still gone: the retry is neither stored again nor confirmed (its DUPLICATE waits for the
        // standby to hold the original offset, like the original did).
        var again = await Assert.ThrowsAsync<BrokerClientException>(() => client.RetryAsync(unconfirmed).AsTask().WaitAsync(s_deadline));
        Assert.Equal(ErrorCode.NotReplicated, again.ErrorCode);
        Assert.Equal(1, Head(broker));
        Assert.Equal(0UL, again.Unconfirmed!.ProducerSequence);

        // The standby comes back and acknowledges offset 0: the retry is confirmed with the original offset.
        Assert.True(broker.Topics.TryGet(Topic, out var topic));
        Ack(gate, topic, next: 1);
        Assert.Equal(0, await client.RetryAsync(again.Unconfirmed).AsTask().WaitAsync(s_deadline));
        Assert.Equal(1, Head(broker));

        // The producer's own numbering went on: the next publish is a new message.
        var next = client.PublishAsync(Topic, "order-2"u8).AsTask();
        await Eventually.TrueAsync(() => Head(broker) == 2, "order-2 written", s_deadline);
        Ack(gate, topic, next: 2);
        Assert.Equal(1, await ConfirmedAsync(client, next));
        Assert.Equal(2, Head(broker));

        // Only this client's producer id is deduplicated against: another client cannot retry it.
        await using var other = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [$"127.0.0.1:{server.EndPoint.Port}"] });
        Assert.Throws<ArgumentException>(() => other.RetryAsync(unconfirmed));
    }

    /// <summary>
    /// The offset <paramref name="publish"/> was confirmed at, the standby having acknowledged it: if the test's
    /// acknowledgement came after the ack timeout (a loaded machine held the test up), the publish failed
    /// NotReplicated and its retry, which keeps its producer sequence, is confirmed with the offset instead.
    /// </summary>
    private static async Task<long> ConfirmedAsync(BrokerClient client, Task<long> publish)
    {
        try
        {
            return await publish.WaitAsync(s_deadline);
        }
        catch (BrokerClientException late) when (late.ErrorCode == ErrorCode.NotReplicated && late.Unconfirmed is { } unconfirmed)
        {
            return await client.RetryAsync(unconfirmed).AsTask().WaitAsync(s_deadline);
        }
    }

    private static long Head(Broker broker) => broker.GetSnapshot().Topics.SingleOrDefault(t => t.Name == Topic)?.Head ?? -1;

    /// <summary>What the replicator's ack reader does when the standby reports holding (and having flushed) everything below <paramref name="next"/>.</summary>
    private static void Ack(ReplicationGate gate, TopicState topic, long next)
    {
        var batch = new ConfirmBatch();
        gate.OnStandbyAck(topic, next, next, batch);
        batch.End();
    }
}
