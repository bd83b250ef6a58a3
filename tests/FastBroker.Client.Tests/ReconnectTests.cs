using FastBroker.Client;
using FastBroker.Client.Internal;
using FastBroker.Protocol;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

/// <summary>Connection loss with the server restarted in-process (graceful stop, same port, same broker).</summary>
public class ReconnectTests
{
    [Theory]
    [InlineData(0.0, 100)]
    [InlineData(0.5, 150)]
    [InlineData(0.999999, 200)]
    public void A_reconnect_waits_between_half_its_delay_and_all_of_it(double unit, int expectedMs)
    {
        var wait = BrokerClient.Jittered(TimeSpan.FromMilliseconds(200), unit);
        Assert.InRange(wait.TotalMilliseconds, expectedMs - 0.01, expectedMs + 0.01);
    }

    /// <summary>
    /// A frozen primary's kernel still completes the TCP handshake, and then nothing answers the HELLO. Listed first, it
    /// must not keep the client from the endpoint that does answer for a whole ConnectTimeout (here ten minutes:
    /// the test's deadline is one): every endpoint is tried at once.
    /// </summary>
    [Fact]
    public async Task An_endpoint_that_accepts_but_never_answers_does_not_hold_up_the_one_that_does()
    {
        await using var f = await ServerFixture.StartAsync();
        using var frozen = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        frozen.Start(); // never accepts in user space: the kernel's backlog completes the handshake, as for a SIGSTOPped server
        var frozenEndpoint = $"127.0.0.1:{((System.Net.IPEndPoint)frozen.LocalEndpoint).Port}";
        await using var client = await BrokerClient.ConnectAsync(f.ClientOptions() with
        {
            Endpoints = [frozenEndpoint, f.Endpoint],
            ConnectTimeout = TimeSpan.FromMinutes(10),
        }).AsTask().WaitAsync(Deadline);
        Assert.Equal(0, await client.PublishAsync("frozen.first", Bytes("m0")).AsTask().WaitAsync(Deadline));

        // And on a reconnect: the server restarts, the frozen endpoint is still listed first.
        await f.RestartServerAsync();
        Assert.Equal(1, await client.PublishAsync("frozen.first", Bytes("m1")).AsTask().WaitAsync(Deadline));
        Assert.True(client.ConnectCount >= 2);
    }

    [Fact]
    public async Task After_a_server_restart_publishes_complete_and_subscriptions_continue_without_gaps_or_repeats()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();
        await using var live = await client.CreateSubscriptionAsync("re.topic", SubscribeOptions.Default with { Start = SubscribeStart.Earliest, Credit = 16 });
        var before = Enumerable.Range(0, 100).Select(i => client.PublishAsync("re.topic", Bytes($"m{i}")).AsTask()).ToList();
        await Task.WhenAll(before).WaitAsync(Deadline);
        var firstHalf = await TakeAsync(live, 50); // the rest stays buffered or on the server

        await f.RestartServerAsync();
        var after = Enumerable.Range(100, 100).Select(i => client.PublishAsync("re.topic", Bytes($"m{i}")).AsTask()).ToList();
        var offsets = await Task.WhenAll(after).WaitAsync(Deadline);

        Assert.Equal(Enumerable.Range(100, 100).Select(i => (long)i), offsets);
        var secondHalf = await TakeAsync(live, 150);
        var all = firstHalf.Concat(secondHalf).ToList();
        Assert.Equal(Enumerable.Range(0, 200).Select(i => (long)i), all.Select(m => m.Offset));
        Assert.Equal(Enumerable.Range(0, 200).Select(i => $"m{i}"), all.Select(m => m.GetPayloadString()));
        Assert.True(client.ConnectCount >= 2);
        Assert.Contains(f.Events, e => e.Kind == BrokerClientEventKind.Disconnected);
    }

    /// <summary>
    /// A wildcard subscription resumes at one offset for every topic (the smallest next one), and its OK names none
    /// (0). After a broker restart its transient topics number from 0 again: the server starts each at its head, below
    /// that offset, and what comes from there is new. Taken for redeliveries (at or below the last offset received of
    /// their topic), every message was dropped silently until the topics passed their old offsets.
    /// </summary>
    [Fact]
    public async Task After_a_broker_restart_a_wildcard_subscription_takes_renumbered_transient_topics_as_new()
    {
        await using var f = await ServerFixture.StartAsync();
        var transient = TopicOptions.Default with { Persistent = false };
        f.Broker.CreateTopic("ticks.a", transient);
        f.Broker.CreateTopic("ticks.b", transient);
        var publisher = await f.ConnectAsync();
        var subscriber = await f.ConnectAsync();
        await using var sub = await subscriber.CreateSubscriptionAsync("ticks.*", SubscribeOptions.Default with { Credit = 64 });
        var handler = new Collector();
        await using var consumer = await subscriber.ConsumeAsync("ticks.*", handler, SubscribeOptions.Default with { Credit = 64 });
        await Task.WhenAll(Enumerable.Range(0, 20).Select(i => publisher.PublishAsync("ticks.a", Bytes($"a{i}")).AsTask())).WaitAsync(Deadline);
        await Task.WhenAll(Enumerable.Range(0, 10).Select(i => publisher.PublishAsync("ticks.b", Bytes($"b{i}")).AsTask())).WaitAsync(Deadline);
        var before = await TakeAsync(sub, 30);
        Assert.Equal(20, before.Count(m => m.Topic == "ticks.a"));
        await EventuallyAsync(() => handler.Received.Count == 30, "the handler got the first 30");

        await f.RestartBrokerAsync();
        await EventuallyAsync(() => f.Broker.GetSnapshot().Subscriptions.Count == 2, "both subscriptions resumed on the restarted broker");
        Assert.Equal(0, Head(f, "ticks.a"));
        await Task.WhenAll(Enumerable.Range(0, 5).Select(i => publisher.PublishAsync("ticks.a", Bytes($"a'{i}")).AsTask())).WaitAsync(Deadline);
        await Task.WhenAll(Enumerable.Range(0, 5).Select(i => publisher.PublishAsync("ticks.b", Bytes($"b'{i}")).AsTask())).WaitAsync(Deadline);

        var after = await TakeAsync(sub, 10);
        Assert.Equal(Enumerable.Range(0, 5).Select(i => ($"a'{i}", (long)i)), after.Where(m => m.Topic == "ticks.a").Select(m => (m.GetPayloadString(), m.Offset)));
        Assert.Equal(Enumerable.Range(0, 5).Select(i => ($"b'{i}", (long)i)), after.Where(m => m.Topic == "ticks.b").Select(m => (m.GetPayloadString(), m.Offset)));
        Assert.Equal(0, sub.Buffered);
        await EventuallyAsync(() => handler.Received.Count >= 40, "the handler got the 10 published after the restart");
        var handled = handler.Received.Skip(30).ToList();
        Assert.Equal(Enumerable.Range(0, 5).Select(i => ($"a'{i}", (long)i)), handled.Where(m => m.Topic == "ticks.a").Select(m => (m.Payload, m.Offset)));
        Assert.Equal(Enumerable.Range(0, 5).Select(i => ($"b'{i}", (long)i)), handled.Where(m => m.Topic == "ticks.b").Select(m => (m.Payload, m.Offset)));
    }

    [Fact]
    public async Task A_group_member_rejoins_and_stale_acks_are_dropped()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();
        await client.PublishAsync("re.jobs", Bytes("j0"));
        await using var member = await client.JoinGroupAsync("re.jobs", "workers", GroupJoinOptions.Default with { Prefetch = 4 });
        var stale = (await TakeAsync(member, 1))[0];

        await f.RestartServerAsync();
        await EventuallyAsync(() => client.IsConnected && client.ConnectCount == 2, "the client reconnected");
        await member.AckAsync(stale); // its connection is gone: dropped, not sent

        var again = (await TakeAsync(member, 1))[0];
        Assert.Equal(stale.Offset, again.Offset);
        await member.AckAsync(again);
        await client.PublishAsync("re.jobs", Bytes("j1"));
        var next = (await TakeAsync(member, 1))[0];
        Assert.Equal("j1", next.GetPayloadString());
        await member.AckAsync(next);
        await EventuallyAsync(() => f.Broker.GetSnapshot().Groups.Single().Acked == 2, "both acks arrived");
        Assert.DoesNotContain(f.Events, e => e.Kind == BrokerClientEventKind.ServerError);
    }

    [Fact]
    public async Task A_request_in_flight_across_a_restart_still_gets_its_reply()
    {
        await using var f = await ServerFixture.StartAsync();
        var requester = await f.ConnectAsync();
        var responderClient = await f.ConnectAsync();
        await using var requests = await responderClient.CreateSubscriptionAsync("svc.slow");

        var pending = requester.RequestAsync("svc.slow", Bytes("q"), TimeSpan.FromSeconds(120)).AsTask();
        var request = (await TakeAsync(requests, 1))[0];
        await f.RestartServerAsync();
        await Within(responderClient.ReplyAsync(request, Bytes("a")));

        var reply = await pending.WaitAsync(Deadline);
        Assert.Equal("a", reply.GetPayloadString());
    }

    [Fact]
    public async Task When_the_server_does_not_come_back_pending_operations_fail_after_the_reconnect_timeout()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync(o => o with { ReconnectTimeout = TimeSpan.FromSeconds(1) });
        await client.PublishAsync("gone", Bytes("ok"));
        await using var sub = await client.CreateSubscriptionAsync("gone");

        await f.StopServerAsync();
        await EventuallyAsync(() => !client.IsConnected, "the client noticed");
        var pending = client.PublishAsync("gone", Bytes("never")).AsTask();
        var error = await Assert.ThrowsAsync<BrokerClientException>(() => pending.WaitAsync(Deadline));
        Assert.Equal(ErrorCode.Closed, error.ErrorCode);
        Assert.Contains("gave up", error.Reason, StringComparison.Ordinal);
        await Assert.ThrowsAsync<BrokerClientException>(async () => await sub.ReadAsync().AsTask().WaitAsync(Deadline));
        Assert.Contains(f.Events, e => e.Kind == BrokerClientEventKind.GaveUp);
    }

    /// <summary>
    /// ReconnectTimeout bounds the whole reconnect, the attempt in progress included: an endpoint whose kernel accepts
    /// the TCP connection and then never answers the HELLO (a frozen server) must not keep the client trying for a whole
    /// ConnectTimeout (here ten minutes; the test's deadline is one) after ReconnectTimeout (one second) ran out.
    /// </summary>
    [Fact]
    public async Task A_reconnect_to_an_endpoint_that_never_answers_gives_up_after_the_reconnect_timeout()
    {
        await using var server = new SilentServer();
        var events = new System.Collections.Concurrent.ConcurrentQueue<BrokerClientEvent>();
        await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with
        {
            Endpoints = [server.Endpoint],
            ReconnectTimeout = TimeSpan.FromSeconds(1),
            ConnectTimeout = TimeSpan.FromMinutes(10),
            OnEvent = events.Enqueue,
        }).AsTask().WaitAsync(Deadline);
        var pending = client.PublishAsync("frozen.reconnect", Bytes("m0")).AsTask(); // never confirmed: pending until the client gives up

        server.HoldWelcomes(); // the next connections are accepted and never answered
        server.DropConnections();

        var error = await Assert.ThrowsAsync<BrokerClientException>(() => pending.WaitAsync(Deadline));
        Assert.Equal(ErrorCode.Closed, error.ErrorCode);
        Assert.Contains("gave up", error.Reason, StringComparison.Ordinal);
        Assert.Contains(events, e => e.Kind == BrokerClientEventKind.GaveUp);
    }

    [Fact]
    public async Task With_reconnect_off_a_connection_loss_fails_what_is_pending()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync(o => o with { Reconnect = false });
        await f.StopServerAsync();
        await EventuallyAsync(() => !client.IsConnected, "the client noticed");
        var error = await Assert.ThrowsAsync<BrokerClientException>(async () => await client.PublishAsync("x", Bytes("y")).AsTask().WaitAsync(Deadline));
        Assert.Equal(ErrorCode.Closed, error.ErrorCode);
    }

    [Fact]
    public async Task An_idle_client_keeps_its_connection_with_heartbeats()
    {
        // A 2 s server interval: the client PINGs every 1 s and counts the connection dead after 2 s without a PONG to
        // one of them. That PONG is not what the test tests (the server's idle timeout is), but a loaded machine may
        // hold it up: a round the client left on it proves nothing either way and is run again, up to three times.
        for (var round = 1; round <= 3; round++)
        {
            if (await RunIdleRoundAsync())
            {
                return;
            }
        }

        Assert.Fail("each of 3 rounds had the client leave on a PING of its own unanswered for two intervals");
    }

    /// <summary>One round of <see cref="An_idle_client_keeps_its_connection_with_heartbeats"/>: false when the client left on an unanswered PING.</summary>
    private static async Task<bool> RunIdleRoundAsync()
    {
        await using var f = await ServerFixture.StartAsync(o => o with { HeartbeatInterval = TimeSpan.FromSeconds(2) });
        var client = await f.ConnectAsync();
        var framesBefore = f.Server.FramesIn;

        // Idle for more than 3 intervals (6 s) is idle timeout unless PINGs go out: wait for seven of them (one per
        // half interval, so 7 s idle).
        await EventuallyAsync(() => f.Server.FramesIn - framesBefore >= 7, "the idle client sent PINGs");
        if (LeftOnAnUnansweredPing(f.Events, TimeSpan.FromSeconds(1)))
        {
            return false;
        }

        Assert.True(client.ConnectCount == 1, string.Join(Environment.NewLine, f.Events.Concat<object>(f.Log)));
        Assert.True(client.IsConnected);
        Assert.Equal(0, await client.PublishAsync("hb", Bytes("alive")));
        return true;
    }

    /// <summary>
    /// The server speaks to an idle client only to answer its PINGs, so a heartbeat task that did not run for longer
    /// than the dead timeout (a loaded machine, a thread pool busy with other tests) sent no PING and is owed no
    /// answer: the silence is its own. Counted from the last receipt, it once dropped an idle connection on CI.
    /// </summary>
    [Fact]
    public async Task A_heartbeat_task_stalled_past_the_dead_timeout_does_not_count_the_server_dead()
    {
        Assert.True(TestHooks.Enabled, "the test host turns the client's test hooks on (RuntimeHostConfigurationOption)");

        // The client PINGs after 1 s (counted dead 3 s after the last receipt, as it was, and 8 s after it when no PING
        // can go out); the 10 s stall is longer than both, and the server's own idle timeout (3 × 10 s) is far off, so
        // the stall cannot end the connection from that side. After the stall a PING has 2 s for its PONG, which a
        // loaded machine may hold up while the heartbeat task runs on time: a round the client left on such a PING
        // proves nothing either way and is run again, up to three times.
        for (var round = 1; round <= 3; round++)
        {
            if (await RunStalledHeartbeatRoundAsync())
            {
                return;
            }
        }

        Assert.Fail("each of 3 rounds had the client leave on a PING of its own unanswered for two intervals");
    }

    /// <summary>One round of <see cref="A_heartbeat_task_stalled_past_the_dead_timeout_does_not_count_the_server_dead"/>: false when the client left on an unanswered PING.</summary>
    private static async Task<bool> RunStalledHeartbeatRoundAsync()
    {
        var interval = TimeSpan.FromSeconds(1);
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync(o => o with { HeartbeatInterval = interval });
        var stalls = 0;
        using var stallOver = new ManualResetEventSlim();
        client.TestHook = (point, _) =>
        {
            if (point == TestHookPoint.HeartbeatTick && Interlocked.Increment(ref stalls) == 1)
            {
                Thread.Sleep(10_000); // the stall under test, not a wait
                stallOver.Set();
            }
        };

        await EventuallyAsync(() => stallOver.IsSet, "the heartbeat task stalled for 10 s");
        var framesAfter = f.Server.FramesIn;
        await EventuallyAsync(() => f.Server.FramesIn - framesAfter >= 3, "the client PINGs again after the stall");
        if (LeftOnAnUnansweredPing(f.Events, interval))
        {
            return false;
        }

        Assert.True(client.ConnectCount == 1, string.Join(Environment.NewLine, f.Events.Concat<object>(f.Log)));
        Assert.True(client.IsConnected);
        Assert.Equal(0, await client.PublishAsync("hb.stall", Bytes("alive")));
        return true;
    }

    /// <summary>A server that stops answering (frozen: no FIN) is still left, once a PING has had no answer for two intervals.</summary>
    [Fact]
    public async Task A_server_that_answers_no_PING_is_counted_dead()
    {
        await using var server = new SilentServer();
        var events = new System.Collections.Concurrent.ConcurrentQueue<BrokerClientEvent>();
        await using var client = await ConnectWithFastHeartbeatsAsync(server, events);

        await EventuallyAsync(() => LeftOnTimeout(events), "the client left the silent server");
    }

    /// <summary>
    /// A server that froze while the client was sending: once the socket buffers are full the client's writer cannot
    /// send, so no PING goes out and none can go unanswered. Silence since the last receipt still ends the connection
    /// (after a longer bound), or the client would wait on a dead primary for ever instead of failing over.
    /// </summary>
    [Fact]
    public async Task A_server_that_stops_reading_while_the_client_sends_is_counted_dead()
    {
        await using var server = new SilentServer { Deaf = true };
        var events = new System.Collections.Concurrent.ConcurrentQueue<BrokerClientEvent>();
        await using var client = await ConnectWithFastHeartbeatsAsync(server, events);

        // Far more than loopback's socket buffers hold (a few MiB each side): the writer ends up stuck in its send.
        var payload = new byte[64 << 10];
        var sender = Task.Run(() =>
        {
            for (var i = 0; i < 1024 && !events.Any(e => e.Kind == BrokerClientEventKind.Disconnected); i++)
            {
                client.Publish("deaf", payload);
            }
        });

        await EventuallyAsync(() => LeftOnTimeout(events), "the client left the server that stopped reading");
        await sender.WaitAsync(Deadline);
    }

    /// <summary>Records what a handler subscription is given.</summary>
    private sealed class Collector : IClientMessageHandler
    {
        public System.Collections.Concurrent.ConcurrentQueue<(string Topic, long Offset, string Payload)> Received { get; } = new();

        public void OnMessage(scoped in ClientMessageView message) => Received.Enqueue((message.Topic, message.Offset, message.GetPayloadString()));
    }

    /// <summary>A client of <paramref name="server"/> that PINGs after 200 ms, its events collected in <paramref name="events"/>.</summary>
    private static async Task<BrokerClient> ConnectWithFastHeartbeatsAsync(SilentServer server, System.Collections.Concurrent.ConcurrentQueue<BrokerClientEvent> events) =>
        await BrokerClient.ConnectAsync(BrokerClientOptions.Default with
        {
            Endpoints = [server.Endpoint],
            HeartbeatInterval = TimeSpan.FromMilliseconds(200),
            OnEvent = events.Enqueue,
        }).AsTask().WaitAsync(Deadline);

    /// <summary>
    /// True when the client left on a PING of its own that went unanswered for more than two of its heartbeat
    /// <paramref name="interval"/>s (the message states how long ago the PING went out): a loaded machine holding up the
    /// server's PONG or the client's reader, not a silence counted from before the PING.
    /// </summary>
    private static bool LeftOnAnUnansweredPing(IEnumerable<BrokerClientEvent> events, TimeSpan interval) =>
        events.Any(e => e.Kind == BrokerClientEventKind.Disconnected
            && e.Exception is TimeoutException timeout
            && System.Text.RegularExpressions.Regex.Match(timeout.Message, @"to a PING sent (\d+) ms ago") is { Success: true } sent
            && long.Parse(sent.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) > 2 * interval.TotalMilliseconds);

    private static bool LeftOnTimeout(IEnumerable<BrokerClientEvent> events) =>
        events.Any(e => e.Kind == BrokerClientEventKind.Disconnected && e.Exception is TimeoutException);
}
