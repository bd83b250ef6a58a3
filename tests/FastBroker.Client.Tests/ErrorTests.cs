using System.Net;
using System.Net.Sockets;
using FastBroker.Client;
using FastBroker.Protocol;
using FastBroker.Server;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

public class ErrorTests
{
    [Fact]
    public async Task A_wrong_token_is_refused_at_connect_and_the_right_one_gets_in()
    {
        await using var f = await ServerFixture.StartAsync(o => o with { Tokens = [new AccessToken("s3cret")] });

        var none = await Assert.ThrowsAsync<BrokerClientException>(async () => await f.ConnectAsync());
        Assert.Equal(ErrorCode.AuthenticationFailed, none.ErrorCode);
        var wrong = await Assert.ThrowsAsync<BrokerClientException>(async () => await f.ConnectAsync(o => o with { AuthToken = "guess" }));
        Assert.Equal(ErrorCode.AuthenticationFailed, wrong.ErrorCode);
        Assert.False(string.IsNullOrEmpty(wrong.Reason));

        var client = await f.ConnectAsync(o => o with { AuthToken = "s3cret" });
        Assert.Equal(0, await client.PublishAsync("secured", Bytes("in")));
    }

    [Fact]
    public async Task Publishing_to_an_unknown_topic_with_auto_create_off_fails_with_UnknownTopic_and_the_connection_stays()
    {
        await using var f = await ServerFixture.StartAsync(broker: o => o with { AutoCreateTopics = false });
        f.Broker.CreateTopic("known", TopicOptions.Default with { SegmentBytes = 4L << 20 });
        var client = await f.ConnectAsync();

        var error = await Assert.ThrowsAsync<BrokerClientException>(async () => await client.PublishAsync("unknown", Bytes("x")));
        Assert.Equal(ErrorCode.UnknownTopic, error.ErrorCode);
        Assert.Contains("unknown", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, await client.PublishAsync("known", Bytes("still connected")));
        Assert.Equal(1, client.ConnectCount);
    }

    [Fact]
    public async Task A_refused_fire_and_forget_publish_is_reported_through_the_event_callback()
    {
        await using var f = await ServerFixture.StartAsync(broker: o => o with { AutoCreateTopics = false });
        var client = await f.ConnectAsync();
        client.Publish("nowhere", Bytes("lost"));
        await EventuallyAsync(() => f.Events.Any(e => e.Kind == BrokerClientEventKind.PublishFailed && e.Code == ErrorCode.UnknownTopic), "the failure was reported");
    }

    [Fact]
    public async Task Subscribing_with_an_invalid_pattern_fails_with_the_servers_code()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();
        var error = await Assert.ThrowsAsync<BrokerClientException>(async () => await client.CreateSubscriptionAsync("bad..pattern"));
        Assert.Equal(ErrorCode.InvalidName, error.ErrorCode);
        await using var ok = await client.CreateSubscriptionAsync("good.pattern");
    }

    [Fact]
    public void Headers_the_server_writes_itself_are_refused_when_added_and_the_other_reserved_names_are_not()
    {
        var headers = new PublishHeaders();
        Assert.Contains("reserved", Assert.Throws<ArgumentException>(() => headers.Add("fb-producer", new byte[16])).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => headers.Add("fb-expires", "1"));
        Assert.Equal(0, headers.Count);
        headers.Add("fb-reply-to", "_inbox.1").Add("fb-priority", "1").Add("fb-dlq-error", "e");
        Assert.Equal(3, headers.Count);
    }

    [Fact]
    public async Task A_message_larger_than_the_servers_frame_limit_fails_without_being_sent()
    {
        await using var f = await ServerFixture.StartAsync(o => o with { MaxFrameSize = 64 * 1024 });
        var client = await f.ConnectAsync();
        var error = await Assert.ThrowsAsync<BrokerClientException>(async () => await client.PublishAsync("big", new byte[70 * 1024]));
        Assert.Equal(ErrorCode.MessageTooLarge, error.ErrorCode);
        Assert.Equal(0, await client.PublishAsync("big", new byte[60 * 1024]));
    }

    [Fact]
    public async Task Nothing_listening_fails_ConnectAsync_with_a_client_exception()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        var error = await Assert.ThrowsAsync<BrokerClientException>(async () =>
            await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [$"127.0.0.1:{port}"] }));
        Assert.Equal(ErrorCode.Closed, error.ErrorCode);
        Assert.NotNull(error.InnerException);
    }

    /// <summary>
    /// Every endpoint refuses (nothing listens on either): ConnectAsync fails as it does for one, not after a whole
    /// ConnectTimeout (here ten minutes; the test's deadline is one) spent retrying each endpoint because the other
    /// was still retrying too. An endpoint is retried only while another's attempt is in progress (one that hangs).
    /// </summary>
    [Fact]
    public async Task Endpoints_that_all_refuse_fail_ConnectAsync_without_waiting_for_ConnectTimeout()
    {
        var endpoints = new List<string>();
        for (var i = 0; i < 2; i++)
        {
            using var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            endpoints.Add($"127.0.0.1:{((IPEndPoint)probe.LocalEndpoint).Port}");
            probe.Stop();
        }

        var connect = BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = endpoints, ConnectTimeout = TimeSpan.FromMinutes(10) }).AsTask();
        var error = await Assert.ThrowsAsync<BrokerClientException>(() => connect.WaitAsync(Deadline));
        Assert.Equal(ErrorCode.Closed, error.ErrorCode);
        Assert.Contains(endpoints[1], error.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true)] // the synchronous connect on a thread of its own (BlockingSocketStream)
    [InlineData(false)] // ConnectAsync
    public async Task A_connect_that_hangs_fails_after_ConnectTimeout(bool receiveThread)
    {
        // A listener that never accepts, with its accept queue full: the kernel drops further SYNs, so a connect hangs.
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(0);
        var endpoint = (IPEndPoint)listener.LocalEndPoint!;
        var fillers = new List<Socket>();
        try
        {
            var full = false;
            for (var i = 0; i < 16 && !full; i++)
            {
                var filler = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                fillers.Add(filler);
                using var wait = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
                try
                {
                    await filler.ConnectAsync(endpoint, wait.Token);
                }
                catch (OperationCanceledException)
                {
                    full = true;
                }
            }

            Assert.True(full, "the listener's accept queue filled up");
            var error = await Assert.ThrowsAsync<BrokerClientException>(async () =>
                await BrokerClient.ConnectAsync(BrokerClientOptions.Default with
                {
                    Endpoints = [endpoint.ToString()],
                    ConnectTimeout = TimeSpan.FromMilliseconds(500),
                    ReceiveThread = receiveThread,
                }).AsTask().WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.Equal(ErrorCode.Closed, error.ErrorCode);
            Assert.IsType<TimeoutException>(error.InnerException);
        }
        finally
        {
            foreach (var filler in fillers)
            {
                filler.Dispose();
            }
        }
    }

    [Fact]
    public async Task The_first_endpoint_that_answers_is_used()
    {
        await using var f = await ServerFixture.StartAsync();
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var dead = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        var client = await f.ConnectAsync(o => o with { Endpoints = [$"127.0.0.1:{dead}", f.Endpoint] });
        Assert.Equal(f.Endpoint, client.Endpoint);
    }

    [Fact]
    public async Task Canceled_operations_throw_OperationCanceledException()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();
        using var canceled = new CancellationTokenSource();
        await canceled.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await client.PublishAsync("c", Bytes("x"), canceled.Token));
        await using var sub = await client.CreateSubscriptionAsync("c");
        using var soon = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await sub.ReadAsync(soon.Token));
        using var soon2 = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await client.RequestAsync("svc.none", Bytes("?"), TimeSpan.FromSeconds(60), cancellationToken: soon2.Token));

        // The client is still fine.
        Assert.Equal(0, await client.PublishAsync("c", Bytes("after")));
    }

    [Fact]
    public async Task A_publish_waiting_for_room_is_withdrawn_when_canceled()
    {
        await using var server = new SilentServer();
        await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [server.Endpoint], MaxInFlight = 2 });
        var inFlight = new[] { client.PublishAsync("t", Bytes("1")).AsTask(), client.PublishAsync("t", Bytes("2")).AsTask() };
        using var cts = new CancellationTokenSource();
        var waiting = client.PublishAsync("t", Bytes("3"), cts.Token).AsTask();
        Assert.Equal(3, client.PendingPublishes);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.WaitAsync(Deadline));
        Assert.Equal(2, client.PendingPublishes);
        Assert.All(inFlight, t => Assert.False(t.IsCompleted));
    }

    /// <summary>
    /// FlushAsync waits for the publishes handed over before it was called to be written; one of them withdrawn (its
    /// PublishAsync canceled while it waited for room) will never be written, and must not hold the flush for ever.
    /// </summary>
    [Fact]
    public async Task A_flush_waiting_for_a_publish_that_is_withdrawn_completes_once_the_rest_is_written()
    {
        await using var server = new SilentServer(); // confirms nothing: the first publish holds the only room
        await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [server.Endpoint], MaxInFlight = 1 });
        var inFlight = client.PublishAsync("t", Bytes("1")).AsTask();
        await client.FlushAsync().WaitAsync(Deadline);
        using var cts = new CancellationTokenSource();
        var waiting = client.PublishAsync("t", Bytes("2"), cts.Token).AsTask();
        var flush = client.FlushAsync();
        Assert.False(flush.IsCompleted);

        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.WaitAsync(Deadline));
        await flush.WaitAsync(Deadline);
        Assert.False(inFlight.IsCompleted);
    }

    [Fact]
    public async Task Disposal_fails_pending_operations_instead_of_hanging()
    {
        await using var server = new SilentServer();
        var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [server.Endpoint], MaxInFlight = 4 });
        var publishes = Enumerable.Range(0, 10).Select(i => client.PublishAsync("t", Bytes($"m{i}")).AsTask()).ToList();
        var subscribe = client.CreateSubscriptionAsync("t").AsTask();
        var admin = client.AdminAsync(AdminQuery.ServerStats).AsTask();
        await EventuallyAsync(() => server.BytesReceived > 0, "the client wrote to the server");

        await client.DisposeAsync().AsTask().WaitAsync(Deadline);

        foreach (var p in publishes)
        {
            var error = await Assert.ThrowsAsync<BrokerClientException>(() => p.WaitAsync(Deadline));
            Assert.Equal(ErrorCode.Closed, error.ErrorCode);
        }

        await Assert.ThrowsAsync<BrokerClientException>(() => subscribe.WaitAsync(Deadline));
        await Assert.ThrowsAsync<BrokerClientException>(() => admin.WaitAsync(Deadline));
        var after = await Assert.ThrowsAsync<BrokerClientException>(async () => await client.PublishAsync("t", Bytes("late")));
        Assert.Equal(ErrorCode.Closed, after.ErrorCode);
        Assert.Throws<BrokerClientException>(() => client.Publish("t", Bytes("late")));
    }

    /// <summary>
    /// Disposal while the supervisor is reconnecting, its attempt held by an endpoint that accepted the TCP connection
    /// and never answers (ConnectTimeout and ReconnectTimeout ten minutes): the attempt is abandoned and everything
    /// pending fails with Closed at once, a fire-and-forget publisher blocked at the in-flight limit included.
    /// </summary>
    [Fact]
    public async Task Disposal_while_reconnecting_fails_pending_operations_at_once()
    {
        await using var server = new SilentServer();
        var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with
        {
            Endpoints = [server.Endpoint],
            MaxInFlight = 1,
            ConnectTimeout = TimeSpan.FromMinutes(10),
            ReconnectTimeout = TimeSpan.FromMinutes(10),
        }).AsTask().WaitAsync(Deadline);
        var publish = client.PublishAsync("t", Bytes("unconfirmed")).AsTask();
        var subscribe = client.CreateSubscriptionAsync("t").AsTask();
        using var blockedStarted = new ManualResetEventSlim();
        var blocked = Task.Factory.StartNew(
            () =>
            {
                blockedStarted.Set();
                client.Publish("t", Bytes("no room")); // blocks: the unconfirmed publish holds the only room
            },
            CancellationToken.None,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default);
        await EventuallyAsync(() => blockedStarted.IsSet && server.BytesReceived > 0, "the client wrote and the publisher blocked");

        server.HoldWelcomes();
        server.DropConnections();
        await EventuallyAsync(() => !client.IsConnected && server.Connections >= 2, "the client is reconnecting, held by the silent endpoint");

        await client.DisposeAsync().AsTask().WaitAsync(Deadline);
        Assert.Equal(ErrorCode.Closed, (await Assert.ThrowsAsync<BrokerClientException>(() => publish.WaitAsync(Deadline))).ErrorCode);
        Assert.Equal(ErrorCode.Closed, (await Assert.ThrowsAsync<BrokerClientException>(() => subscribe.WaitAsync(Deadline))).ErrorCode);
        Assert.Equal(ErrorCode.Closed, (await Assert.ThrowsAsync<BrokerClientException>(() => blocked.WaitAsync(Deadline))).ErrorCode);
        Assert.False(client.IsConnected);
    }

    [Fact]
    public async Task Disposal_ends_subscription_enumerations()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await BrokerClient.ConnectAsync(f.ClientOptions());
        var sub = await client.CreateSubscriptionAsync("ending");
        var reader = Task.Run(async () =>
        {
            var n = 0;
            await foreach (var m in sub.ReadAllAsync())
            {
                n++;
            }

            return n;
        });
        await client.DisposeAsync();
        Assert.Equal(0, await reader.WaitAsync(Deadline));
    }

    [Theory]
    [InlineData((ushort)17)] // Internal
    [InlineData((ushort)99)] // a code this client does not know (as Internal is to a client older than it)
    public async Task A_publish_refused_with_Internal_or_an_unknown_code_fails_with_that_code_and_the_client_goes_on(ushort code)
    {
        await using var server = new SilentServer(ProtocolFeatures.Batching) { RefusePublishesWith = (ErrorCode)code };
        await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [server.Endpoint] });

        for (var i = 0; i < 2; i++)
        {
            var error = await Assert.ThrowsAsync<BrokerClientException>(async () => await client.PublishAsync("t", Bytes("x")));
            Assert.Equal((ErrorCode)code, error.ErrorCode);
            Assert.Contains($"({code}): the server refused a message to 't'", error.Message, StringComparison.Ordinal);
        }

        Assert.True(client.IsConnected && client.ConnectCount == 1, $"connected {client.IsConnected}, connections {client.ConnectCount}");
    }
}
