using FastBroker.Client;
using FastBroker.Client.Internal;
using FastBroker.Protocol;
using FastBroker.Server;
using FastBroker.Testing;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

/// <summary>
/// Publishes the server stored but whose CONFIRMs were lost with the connection: the client resends them with
/// their original producer id and sequence, and the server confirms the original offsets without storing them twice.
/// </summary>
public class IdempotentProducerTests
{
    [Fact]
    public async Task Publishes_stored_but_unconfirmed_before_a_connection_loss_are_resent_and_stored_once()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var proxy = new TcpProxy(f.Port);
        var client = await f.ConnectAsync(o => o with { Endpoints = [proxy.Endpoint] });
        Assert.Equal(0, await client.PublishAsync("idem", Bytes("m0")));

        proxy.DropServerBytes = true;
        var lost = Enumerable.Range(1, 100).Select(i => client.PublishAsync("idem", Bytes($"m{i}")).AsTask()).ToList();
        await EventuallyAsync(() => Head(f, "idem") == 101, "the server stored all of them");
        Assert.All(lost, t => Assert.False(t.IsCompleted));

        proxy.CutAllAndForwardServerBytes();
        var offsets = await Task.WhenAll(lost).WaitAsync(Deadline);

        Assert.Equal(Enumerable.Range(1, 100).Select(i => (long)i), offsets);
        Assert.Equal(100, client.DuplicateConfirmations);
        Assert.Equal(2, client.ConnectCount);
        Assert.Equal(101, await client.PublishAsync("idem", Bytes("m101")));
        Assert.Equal(102, Head(f, "idem"));
    }

    [Fact]
    public async Task Two_clients_have_different_producer_ids_and_a_configured_one_is_kept()
    {
        await using var f = await ServerFixture.StartAsync();
        var a = await f.ConnectAsync();
        var b = await f.ConnectAsync();
        var c = await f.ConnectAsync(o => o with { ProducerId = 42 });
        Assert.NotEqual(0UL, a.ProducerId);
        Assert.NotEqual(a.ProducerId, b.ProducerId);
        Assert.Equal(42UL, c.ProducerId);
    }

    [Fact]
    public async Task A_new_client_with_a_configured_producer_id_continues_after_the_sequences_the_broker_stored()
    {
        await using var f = await ServerFixture.StartAsync();
        await using (var first = await BrokerClient.ConnectAsync(f.ClientOptions() with { ProducerId = 4242 }))
        {
            for (var i = 0; i < 3; i++)
            {
                Assert.Equal(i, await Within(first.PublishAsync("restarted", Bytes($"old{i}"))));
            }
        }

        // The application restarts: a new client, same configured id. Its messages are new, not retries of the old ones.
        var second = await f.ConnectAsync(o => o with { ProducerId = 4242 });
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(3 + i, await Within(second.PublishAsync("restarted", Bytes($"new{i}"))));
        }

        Assert.Equal(0, second.DuplicateConfirmations);
        Assert.Equal(6, Head(f, "restarted"));
    }

    [Fact]
    public async Task After_a_broker_restart_a_new_client_with_the_same_producer_id_continues_after_what_the_journal_holds()
    {
        using var dir = new TempDirectory("fastbroker-client-producer");
        var brokerOptions = BrokerOptions.Default with { DataDirectory = dir.Path, DefaultTopicOptions = TopicOptions.Default with { SegmentBytes = 4L << 20 } };
        var serverOptions = ServerOptions.Default with { Host = "127.0.0.1", Port = 0 };
        var clientOptions = BrokerClientOptions.Default with { ProducerId = 77, Reconnect = false };
        await using (var broker = await Broker.OpenAsync(brokerOptions))
        await using (var server = await BrokerServer.StartAsync(broker, serverOptions))
        await using (var first = await BrokerClient.ConnectAsync(clientOptions with { Endpoints = [$"127.0.0.1:{server.EndPoint.Port}"] }))
        {
            for (var i = 0; i < 5; i++)
            {
                Assert.Equal(i, await Within(first.PublishAsync("rebuilt", Bytes($"old{i}"))));
            }
        }

        // The window is rebuilt from the journal's producer headers; the new client asks it where its id stands.
        await using (var broker = await Broker.OpenAsync(brokerOptions))
        await using (var server = await BrokerServer.StartAsync(broker, serverOptions))
        await using (var second = await BrokerClient.ConnectAsync(clientOptions with { Endpoints = [$"127.0.0.1:{server.EndPoint.Port}"] }))
        {
            Assert.Equal(5, await Within(second.PublishAsync("rebuilt", Bytes("new0"))));
            Assert.Equal(0, second.DuplicateConfirmations);
            Assert.Equal(6, broker.GetSnapshot().Topics.Single(t => t.Name == "rebuilt").Head);
        }
    }

    [Fact]
    public async Task ConnectAsync_fails_with_Timeout_when_INIT_PRODUCER_is_not_answered_within_ConnectTimeout()
    {
        await using var server = new SilentServer(SilentServer.DefaultFeatures | ProtocolFeatures.InitProducer);
        var error = await Assert.ThrowsAsync<BrokerClientException>(() => BrokerClient.ConnectAsync(BrokerClientOptions.Default with
        {
            Endpoints = [server.Endpoint],
            ProducerId = 4242,
            ConnectTimeout = TimeSpan.FromSeconds(3),
            ReconnectTimeout = TimeSpan.FromMinutes(10), // what bounded the wait before (heartbeats, reconnects, asking again)
        }).AsTask().WaitAsync(Deadline));

        Assert.Equal(ErrorCode.Timeout, error.ErrorCode);
        Assert.Contains("INIT_PRODUCER", error.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ConnectAsync_fails_with_Closed_when_its_connection_ends_before_INIT_PRODUCER_is_answered()
    {
        await using var server = new SilentServer(SilentServer.DefaultFeatures | ProtocolFeatures.InitProducer);
        var connect = BrokerClient.ConnectAsync(BrokerClientOptions.Default with
        {
            Endpoints = [server.Endpoint],
            ProducerId = 4242,
            ConnectTimeout = TimeSpan.FromMinutes(5), // so only the lost connection can end the wait within the deadline
            ReconnectTimeout = TimeSpan.FromMinutes(10),
        }).AsTask();
        await EventuallyAsync(() => server.InitProducers == 1, "the client asked where its producer id stands");
        server.DropConnections();

        var error = await Assert.ThrowsAsync<BrokerClientException>(() => connect.WaitAsync(Deadline));
        Assert.Equal(ErrorCode.Closed, error.ErrorCode);
        Assert.Contains("INIT_PRODUCER", error.Reason, StringComparison.Ordinal);
        Assert.Equal(1, server.InitProducers); // not asked again on another connection
    }

    [Fact]
    public async Task ConnectAsync_fails_with_Closed_at_once_when_its_connection_ended_before_INIT_PRODUCER_was_queued()
    {
        Assert.True(TestHooks.Enabled, "the test host turns the client's test hooks on (RuntimeHostConfigurationOption)");
        await using var f = await ServerFixture.StartAsync();
        using var disconnected = new ManualResetEventSlim();
        var options = f.ClientOptions() with
        {
            ProducerId = 4242,
            ConnectTimeout = TimeSpan.FromSeconds(5), // what the INIT_PRODUCER waited for before it failed with Timeout
            ReconnectInitialDelay = TimeSpan.FromMinutes(10), // no next connection, so no writer that would find the op
            ReconnectMaxDelay = TimeSpan.FromMinutes(10),
            ReconnectTimeout = TimeSpan.FromMinutes(20),
            OnEvent = e =>
            {
                f.Events.Enqueue(e);
                if (e.Kind == BrokerClientEventKind.Disconnected)
                {
                    disconnected.Set();
                }
            },
        };

        // The connection to the real server ends (as a reset does) just before ConnectAsync queues its INIT_PRODUCER,
        // and the client has handled the loss (the Disconnected event follows it) when the op is queued.
        var error = await Assert.ThrowsAsync<BrokerClientException>(() => BrokerClient.ConnectWithTestHookAsync(
            options,
            (point, connection) =>
            {
                if (point == TestHookPoint.InitProducerQueueing)
                {
                    connection.Abort(new IOException("connection reset by the test"));
                    Assert.True(disconnected.Wait(Deadline), "the client did not handle the lost connection");
                }
            },
            CancellationToken.None).AsTask().WaitAsync(Deadline));

        Assert.Equal(ErrorCode.Closed, error.ErrorCode);
        Assert.Contains("was lost before the server answered INIT_PRODUCER", error.Reason, StringComparison.Ordinal);
        Assert.Contains("connection reset by the test", error.InnerException?.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RetryAsync_on_a_connection_without_IdempotentProducer_is_refused_before_anything_is_sent()
    {
        await using var server = new SilentServer(ProtocolFeatures.IdempotentProducer | ProtocolFeatures.Batching) { RefusePublishesWith = ErrorCode.NotReplicated };
        await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [server.Endpoint] });
        var pending = await NotReplicatedAsync(client);

        // The next server (an older node of the pair, say) does not grant IdempotentProducer.
        server.Features = ProtocolFeatures.Batching;
        server.DropConnections();
        await EventuallyAsync(() => client.ConnectCount == 2 && client.IsConnected, "the client reconnected");
        Assert.Equal(ProtocolFeatures.None, client.Features & ProtocolFeatures.IdempotentProducer);

        var sent = server.PublishBatches;
        var error = await Assert.ThrowsAsync<BrokerClientException>(async () => await client.RetryAsync(pending));
        Assert.Equal(ErrorCode.UnexpectedFrame, error.ErrorCode);
        Assert.Contains("IdempotentProducer", error.Reason, StringComparison.Ordinal);
        await AssertNothingSentAsync(server, client, sent);
    }

    [Fact]
    public async Task A_retry_queued_before_a_reconnect_to_a_server_without_IdempotentProducer_fails_instead_of_being_sent()
    {
        await using var server = new SilentServer(ProtocolFeatures.IdempotentProducer | ProtocolFeatures.Batching) { RefusePublishesWith = ErrorCode.NotReplicated };
        await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [server.Endpoint], ConnectTimeout = TimeSpan.FromSeconds(30) });
        var pending = await NotReplicatedAsync(client);

        // Between connections (the next WELCOME is held back) the last connection's grant is all the client knows:
        // the retry is queued, and the next connection, without IdempotentProducer, must not send it.
        server.Features = ProtocolFeatures.Batching;
        server.HoldWelcomes();
        server.DropConnections();
        await EventuallyAsync(() => !client.IsConnected, "the client lost its connection");
        var retry = client.RetryAsync(pending).AsTask();
        var flush = client.FlushAsync(); // waits for the retry, which will never be written
        var sent = server.PublishBatches;
        server.ReleaseWelcomes();

        var error = await Assert.ThrowsAsync<BrokerClientException>(() => retry.WaitAsync(Deadline));
        Assert.Equal(ErrorCode.UnexpectedFrame, error.ErrorCode);
        Assert.Contains("IdempotentProducer", error.Reason, StringComparison.Ordinal);
        await flush.WaitAsync(Deadline);
        await AssertNothingSentAsync(server, client, sent);
    }

    /// <summary>A publish the server refuses with NotReplicated: what the application would retry.</summary>
    private static async Task<UnconfirmedPublish> NotReplicatedAsync(BrokerClient client)
    {
        var refused = await Assert.ThrowsAsync<BrokerClientException>(() => client.PublishAsync("orders", Bytes("o1")).AsTask().WaitAsync(Deadline));
        Assert.Equal(ErrorCode.NotReplicated, refused.ErrorCode);
        return Assert.IsType<UnconfirmedPublish>(refused.Unconfirmed);
    }

    /// <summary>
    /// One more publish (refused by the server too) is the only PUBLISH_BATCH it got since <paramref name="sent"/>:
    /// frames of a connection arrive in order, so a retry sent before it would have been counted first.
    /// </summary>
    private static async Task AssertNothingSentAsync(SilentServer server, BrokerClient client, long sent)
    {
        await Assert.ThrowsAsync<BrokerClientException>(() => client.PublishAsync("orders", Bytes("o2")).AsTask().WaitAsync(Deadline));
        Assert.Equal(sent + 1, server.PublishBatches);
    }
}
