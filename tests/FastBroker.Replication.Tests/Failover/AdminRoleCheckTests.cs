using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using FastBroker.Client;
using FastBroker.Replication;
using FastBroker.Server;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A load balancer's health check reads the HTTP code only: on a pair's admin ports <c>GET /primary</c> is 200 on the
/// serving primary alone and <c>GET /standby</c> on a standby following it alone, both 503 elsewhere, and they change
/// with a promotion; <c>GET /health</c> stays 200 on both (liveness). <c>GET /standby</c> also fails on a standby that
/// has stopped hearing from its primary (frozen: its link stays open and silent) and, with <c>?lag=N</c>, on one that
/// lacks more than N records of the heads its primary last reported.
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class AdminRoleCheckTests(ITestOutputHelper output)
{
    private static readonly HttpClient s_http = new() { Timeout = TimeSpan.FromSeconds(30) };

    [Fact]
    public async Task Primary_and_standby_checks_answer_200_only_on_the_node_in_that_role_and_follow_a_promotion()
    {
        using var dir = new TempDirectory();
        var log = new List<string>();
        var (a, b) = await InProcessPair.StartAsync(dir, BrokerOptions.Default, o => o with { Log = line => { lock (log) { log.Add(line); } } });
        try
        {
            await using (a)
            await using (b)
            {
                await using var adminServerA = await a.StartAdminAsync("127.0.0.1", 0);
                await using var adminServerB = await b.StartAdminAsync("127.0.0.1", 0);
                var (adminA, adminB) = (adminServerA.EndPoint.ToString(), adminServerB.EndPoint.ToString());

                // a serves: /primary is /health's document with 200, /standby the same with 503.
                var primary = await WaitForAsync(adminA, "/primary", HttpStatusCode.OK, "a's /primary while a is primary");
                Assert.Equal("ok", Status(primary));
                Assert.Equal(Status(await GetAsync(adminA, "/health", HttpStatusCode.OK)), Status(primary));
                Assert.Equal("ok", Status(await GetAsync(adminA, "/standby", HttpStatusCode.ServiceUnavailable)));

                // b follows a: /standby 200, /primary 503, /health 200 (it is up).
                Assert.Equal("standby", Status(await WaitForAsync(adminB, "/standby", HttpStatusCode.OK, "b's /standby while b follows a")));
                Assert.Equal("standby", Status(await GetAsync(adminB, "/primary", HttpStatusCode.ServiceUnavailable)));
                Assert.Equal("standby", Status(await GetAsync(adminB, "/health", HttpStatusCode.OK)));

                // b promoted while a is up: b is the primary; a sees the newer epoch, steps down and follows b.
                var epoch = await b.PromoteAsync().WaitAsync(TimeSpan.FromSeconds(60));
                Assert.Equal("ok", Status(await GetAsync(adminB, "/primary", HttpStatusCode.OK)));
                Assert.Equal("ok", Status(await GetAsync(adminB, "/standby", HttpStatusCode.ServiceUnavailable)));
                Assert.Equal("standby", Status(await WaitForAsync(adminA, "/standby", HttpStatusCode.OK, $"a's /standby once it follows b (epoch {epoch})")));
                Assert.Equal(NodeRole.Standby, a.Role);
                var deposed = await GetAsync(adminA, "/primary", HttpStatusCode.ServiceUnavailable);
                Assert.Equal("standby", Status(deposed));
                Assert.Equal(epoch, JsonDocument.Parse(deposed).RootElement.GetProperty("epoch").GetInt64());
                Assert.Equal("ok", Status(await GetAsync(adminB, "/primary", HttpStatusCode.OK)));

                // b stops: a, still a standby, follows no one, so /standby turns 503 (and /primary stays 503).
                await b.DisposeAsync();
                Assert.Equal("standby", Status(await WaitForAsync(adminA, "/standby", HttpStatusCode.ServiceUnavailable, "a's /standby once b is gone")));
                Assert.Equal(HttpStatusCode.ServiceUnavailable, (await RequestAsync(adminA, "/primary")).Status);
            }
        }
        catch
        {
            lock (log)
            {
                output.WriteLine(string.Join('\n', log));
            }

            throw;
        }
    }

    /// <summary>
    /// b catches up a backlog over a slow link (a throttled proxy): it hears the primary all the time (bytes flow, and a
    /// heartbeat with the heads after each pass), so plain <c>/standby</c> is 200, but it lacks thousands of records,
    /// so <c>/standby?lag=1000</c> is 503 with the lag in the body until it has caught up. A malformed lag is 400.
    /// </summary>
    [Fact]
    public async Task Standby_check_with_lag_fails_while_the_standby_lacks_more_records_and_passes_once_caught_up()
    {
        const string Topic = "lag.orders";

        // 1 KiB records, 1 MiB/s through the proxy. The first heads b hears come after what a's socket send buffer took
        // before them (up to tcp_wmem's maximum, 4 MiB by default) and a pass of catch-up (1 MiB): with 12 MiB more than
        // that buffer, b is still thousands of records behind then, for seconds.
        var backlog = (int)((TcpSendBufferMax() + (12 << 20)) >> 10);
        await using var pair = new PairHarness();
        try
        {
            int portA = FreePort.Next(), portB = FreePort.Next();
            var toA = pair.AddProxy(portA);
            string[] options = ["--acks", "local", "--heartbeat-timeout-ms", "10000"];
            var a = pair.AddNode("a", portA, $"127.0.0.1:{portB}", [.. options, "--role", "primary"]);
            var b = pair.AddNode("b", portB, toA.Endpoint, [.. options, "--role", "standby"]);
            await a.StartAsync();
            await a.WaitForAsync(s => s.IsPrimary, "a is primary");
            await using (var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [a.ClientEndpoint], MaxInFlight = 1024 }))
            {
                var payload = new byte[1 << 10];
                var confirmed = new List<Task<long>>(backlog);
                for (var i = 0; i < backlog; i++)
                {
                    confirmed.Add(client.PublishAsync(Topic, payload).AsTask());
                }

                Assert.Equal(backlog - 1, (await Task.WhenAll(confirmed)).Max());
            }

            toA.BytesPerSecond = 1 << 20;
            var sw = Stopwatch.StartNew();
            await b.StartAsync();
            await b.WaitForAsync(s => s.IsStandby && s.Replica is { Connected: true }, "b follows a through the slow link");

            // Behind by thousands of records as a's heartbeats report: the lag check fails, with the lag in the body.
            var behind = await WaitForAsync(b.AdminEndpoint, "/standby?lag=1000", HttpStatusCode.ServiceUnavailable, "b's lag check while it catches up", body => Reason(body)?.Contains("records behind", StringComparison.Ordinal) == true);
            var lag = LagRecords(behind);
            output.WriteLine($"while catching up ({sw.ElapsedMilliseconds} ms after b started): {behind}");
            Assert.InRange(lag, 1001, backlog);
            Assert.Equal("standby", Status(behind));

            // It hears its primary: without lag, or with a lag it is within, it is a healthy standby.
            Assert.Equal("standby", Status(await WaitForAsync(b.AdminEndpoint, "/standby", HttpStatusCode.OK, "b's plain check while it catches up")));
            Assert.Equal("standby", Status(await WaitForAsync(b.AdminEndpoint, $"/standby?lag={backlog}", HttpStatusCode.OK, "b's check with a lag it is within")));

            // A malformed lag is the caller's mistake, on either node: 400 saying what is expected (records, not bytes).
            foreach (var admin in new[] { b.AdminEndpoint, a.AdminEndpoint })
            {
                foreach (var bad in new[] { "16MB", "-1", "", "1.5", "99999999999999999999", "1&lag=2" })
                {
                    var (status, _, text) = await RequestAsync(admin, $"/standby?lag={bad}");
                    Assert.True(status == HttpStatusCode.BadRequest, $"GET /standby?lag={bad}: {(int)status} {text}");
                    Assert.Contains("lag", text, StringComparison.Ordinal);
                }
            }

            Assert.Contains("whole number of records", (await RequestAsync(b.AdminEndpoint, "/standby?lag=16MB")).Body, StringComparison.Ordinal);

            // The link runs at full speed again: b catches up, and even lag=0 passes.
            toA.BytesPerSecond = 0;
            var caughtUp = await WaitForAsync(b.AdminEndpoint, "/standby?lag=0", HttpStatusCode.OK, "b's lag check once it has caught up");
            Assert.Equal(0, LagRecords(caughtUp));
            await b.WaitForAsync(s => s.ReplicaOf(Topic)?.Next == backlog, "b holds the backlog");
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }

    /// <summary>
    /// A pair with no topics: a's heartbeats report an empty set of heads, which is a report (nothing to lack), so b,
    /// following a, knows its lag is 0 and passes even <c>/standby?lag=0</c>; both checks carry <c>"lagRecords": 0</c>.
    /// </summary>
    [Fact]
    public async Task Standby_check_with_lag_passes_on_a_pair_with_no_topics()
    {
        await using var pair = new PairHarness();
        try
        {
            var (_, b, _) = await pair.StartConfiguredPairAsync([], []);
            var current = await WaitForAsync(b.AdminEndpoint, "/standby?lag=0", HttpStatusCode.OK, "b's lag check while it follows a primary with no topics");
            output.WriteLine($"b with no topics: {current}");
            Assert.Equal("standby", Status(current));
            Assert.Equal(0, LagRecords(current));
            var following = await GetAsync(b.AdminEndpoint, "/primary", HttpStatusCode.ServiceUnavailable);
            Assert.Equal(0, LagRecords(following));
            Assert.Equal("standby of primary 'a' (epoch 1), following it: 0 records behind the heads it last reported", Reason(following));
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }

    /// <summary>
    /// A primary that froze (SIGSTOP: its kernel keeps the link open, nothing more comes) is silent: the standby's link
    /// ends only at the heartbeat timeout (two minutes here, so it does not end during the test), but <c>/standby</c>
    /// must fail as soon as heartbeats stop coming, the reason in the body, and pass again once the primary thaws.
    /// </summary>
    [Fact]
    public async Task Standby_check_fails_while_the_primary_is_frozen_before_the_heartbeat_timeout_ends_the_link()
    {
        await using var pair = new PairHarness();
        NodeProcess? frozen = null;
        try
        {
            string[] options = ["--heartbeat-timeout-ms", "120000"];
            var (a, b, _) = await pair.StartConfiguredPairAsync(options, options);
            Assert.Equal("standby", Status(await WaitForAsync(b.AdminEndpoint, "/standby", HttpStatusCode.OK, "b's check while it follows a")));

            a.Freeze();
            frozen = a;
            var silent = await WaitForAsync(b.AdminEndpoint, "/standby", HttpStatusCode.ServiceUnavailable, "b's check while a is frozen");
            output.WriteLine($"while a is frozen: {silent}");
            Assert.Contains("nothing from the primary 'a'", Reason(silent), StringComparison.Ordinal);
            var status = await b.WaitForAsync(s => s.IsStandby, "b answers its status");
            Assert.True(status.Replica is { Connected: true, PrimaryId: "a" }, $"b's link ended: the check must not wait for that\n{status.Json}");

            a.Freeze(false);
            frozen = null;
            Assert.Equal("standby", Status(await WaitForAsync(b.AdminEndpoint, "/standby", HttpStatusCode.OK, "b's check once a has thawed")));
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
        finally
        {
            frozen?.Freeze(false); // so that the harness can kill and reap it
        }
    }

    /// <summary>
    /// <c>GET /primary</c> on a node that does not serve as primary answers 503 with why, in one line, in each state a
    /// pair reaches: starting (deciding), standby following the primary, fenced (a newer primary exists: stepping down,
    /// then rejoining), standby following no one, stopping. a's peer address is a socket that accepts and never answers
    /// (a frozen host): each of a's probes of it waits out a's whole probe timeout (10 s), which holds a in the states
    /// that otherwise pass within a probe. b reaches a directly.
    /// </summary>
    [Fact]
    public async Task Primary_check_says_why_a_node_does_not_serve_as_primary()
    {
        using var dir = new TempDirectory();
        using var silentPeer = SilentListener();
        var log = new List<string>();
        var slowProbes = TimeSpan.FromSeconds(10);
        ReplicationOptions Node(string id, string peer, NodeRole role, TimeSpan heartbeatTimeout) => new()
        {
            NodeId = id,
            DataDirectory = dir.Combine(id),
            Port = FreePort.Next(),
            Peer = peer,
            InitialRole = role,
            HeartbeatTimeout = heartbeatTimeout,
            ProbeTimeoutLimit = heartbeatTimeout,
            Log = line => { lock (log) { log.Add(line); } },
        };

        var serverOptions = ServerOptions.Default with { Port = 0 };
        ReplicatedNode? b = null;
        var a = await ReplicatedNode.StartAsync(BrokerOptions.Default, serverOptions, Node("a", silentPeer.LocalEndPoint!.ToString()!, NodeRole.Primary, slowProbes));
        try
        {
            await using var adminServerA = await a.StartAdminAsync("127.0.0.1", 0);
            var adminA = adminServerA.EndPoint.ToString();

            // Deciding: a's probe of its peer waits.
            var starting = await WaitForAsync(adminA, "/primary", HttpStatusCode.ServiceUnavailable, "a's /primary while a decides", body => Status(body) == "starting");
            Assert.Equal("starting: deciding its role (probing its peer)", Reason(starting));
            Assert.Equal("ok", Status(await WaitForAsync(adminA, "/primary", HttpStatusCode.OK, "a's /primary once a is primary")));

            b = await ReplicatedNode.StartAsync(BrokerOptions.Default, serverOptions, Node("b", a.ReplicationEndPoint.ToString(), NodeRole.Standby, TimeSpan.FromSeconds(10)));
            await using var adminServerB = await b.StartAdminAsync("127.0.0.1", 0);
            var adminB = adminServerB.EndPoint.ToString();

            // b follows a: whom, at which epoch, how far behind (a's first heartbeat on the link reports its heads).
            var following = await WaitForAsync(adminB, "/primary", HttpStatusCode.ServiceUnavailable, "b's /primary while b follows a", body => Reason(body)?.Contains("records behind", StringComparison.Ordinal) == true);
            output.WriteLine($"b follows a: {following}");
            Assert.Equal("standby", Status(following));
            Assert.Equal("standby of primary 'a' (epoch 1), following it: 0 records behind the heads it last reported", Reason(following));

            // b promoted by hand (no witness): it probes a at epoch 2, and a steps down. a's watch learns of it only
            // once its probe of its silent peer ends, and deciding as fenced waits for another: fenced, with why.
            Assert.Equal(2, await b.PromoteAsync().WaitAsync(TimeSpan.FromSeconds(60)));
            Assert.Equal("ok", Status(await WaitForAsync(adminB, "/primary", HttpStatusCode.OK, "b's /primary once promoted")));
            var fenced = await WaitForAsync(adminA, "/primary", HttpStatusCode.ServiceUnavailable, "a's /primary once b is primary", body => Reason(body)?.StartsWith("fenced: ", StringComparison.Ordinal) == true);
            output.WriteLine($"a once b is primary: {fenced}");
            Assert.Equal("fenced", Status(fenced));
            Assert.Contains(Reason(fenced), new[] { "fenced: a newer primary 'b' (epoch 2) exists: stepping down", "fenced: peer 'b' is primary at newer epoch 2; rejoining as standby" });
            await WaitForAsync(adminA, "/primary", HttpStatusCode.ServiceUnavailable, "a's /primary once it has stepped down", body => Reason(body) == "fenced: peer 'b' is primary at newer epoch 2; rejoining as standby");

            // a rejoins as standby of its (silent) peer: it follows no one.
            var alone = await WaitForAsync(adminA, "/primary", HttpStatusCode.ServiceUnavailable, "a's /primary as a standby of its silent peer", body => Status(body) == "standby");
            Assert.Equal("standby following no primary (not connected to one, or refused)", Reason(alone));

            // a stops; its admin server still answers.
            await a.DisposeAsync();
            var stopping = await GetAsync(adminA, "/primary", HttpStatusCode.ServiceUnavailable);
            Assert.Equal("stopping: the node is shutting down, or has stopped", Reason(stopping));
        }
        catch
        {
            lock (log)
            {
                output.WriteLine(string.Join('\n', log));
            }

            throw;
        }
        finally
        {
            await a.DisposeAsync();
            if (b is not null)
            {
                await b.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// A node that is stopping says so: a's graceful stop waits (its hand-over) for b, whose link a stalled proxy holds,
    /// and meanwhile, and once a has stopped, a's <c>/primary</c> and <c>/standby</c> are 503 and its <c>/health</c> 200,
    /// all with <c>"status":"stopping"</c> (not <c>fenced</c>: it lost nothing, it was asked to stop); so are b's once b
    /// stops.
    /// </summary>
    [Fact]
    public async Task Checks_say_stopping_on_a_node_that_is_stopping()
    {
        using var dir = new TempDirectory();
        var log = new List<string>();
        var proxies = new List<TcpProxy>();
        var (a, b) = await InProcessPair.StartAsync(dir, BrokerOptions.Default, o => o with { Log = line => { lock (log) { log.Add(line); } } }, port =>
        {
            var proxy = new TcpProxy(port);
            proxies.Add(proxy);
            return proxy.Endpoint;
        });
        try
        {
            await using (a)
            await using (b)
            {
                await using var adminServerA = await a.StartAdminAsync("127.0.0.1", 0);
                await using var adminServerB = await b.StartAdminAsync("127.0.0.1", 0);
                var (adminA, adminB) = (adminServerA.EndPoint.ToString(), adminServerB.EndPoint.ToString());
                await WaitForAsync(adminA, "/primary", HttpStatusCode.OK, "a's /primary while a is primary");
                await WaitForAsync(adminB, "/standby", HttpStatusCode.OK, "b's /standby while b follows a");

                // b's link stalls: a's stop waits for b to take everything over (up to its ack timeout, 5 s).
                proxies[^1].Stall();
                var stopping = a.DisposeAsync().AsTask();
                var handingOver = await WaitForAsync(adminA, "/primary", HttpStatusCode.ServiceUnavailable, "a's /primary while a stops", body => Reason(body)?.StartsWith("stopping: ", StringComparison.Ordinal) == true);
                output.WriteLine($"a stopping ({(stopping.IsCompleted ? "stopped" : "handing over")}): {handingOver}");
                Assert.Equal("stopping", Status(handingOver));
                proxies[^1].Resume();
                await stopping.WaitAsync(TimeSpan.FromSeconds(60));

                foreach (var (admin, node) in new[] { (adminA, "a"), (adminB, "b") })
                {
                    if (node == "b")
                    {
                        await b.DisposeAsync();
                    }

                    var primary = await GetAsync(admin, "/primary", HttpStatusCode.ServiceUnavailable);
                    output.WriteLine($"{node} stopped: /primary {primary}");
                    Assert.Equal("stopping", Status(primary));
                    Assert.Equal("stopping: the node is shutting down, or has stopped", Reason(primary));
                    var standby = await GetAsync(admin, "/standby", HttpStatusCode.ServiceUnavailable);
                    Assert.Equal("stopping", Status(standby));
                    Assert.Equal("stopping: the node is shutting down, or has stopped", Reason(standby));
                    Assert.Equal("stopping", Status(await GetAsync(admin, "/health", HttpStatusCode.OK)));
                }
            }
        }
        catch
        {
            lock (log)
            {
                output.WriteLine(string.Join('\n', log));
            }

            throw;
        }
        finally
        {
            foreach (var proxy in proxies)
            {
                await proxy.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// A promotion asked for by hand, taken up and waiting for the witness (a socket that accepts and never answers, so
    /// that the request waits out its 30 s call timeout): the node's status is <c>promoting</c> on <c>GET /primary</c>
    /// (503, the reason says what it waits for), <c>/standby</c> (503: it no longer follows its primary, so no reads go
    /// to it), <c>/health</c> (200) and <c>/status</c> (what <c>fastbroker status</c> prints), where it said
    /// <c>standby</c>.
    /// </summary>
    [Fact]
    public async Task Checks_say_promoting_while_a_standby_s_promotion_asks_the_witness()
    {
        using var dir = new TempDirectory();
        using var silentWitness = SilentListener();
        var log = new List<string>();
        var (a, b) = await InProcessPair.StartAsync(dir, BrokerOptions.Default, o => o with
        {
            Witness = o.NodeId == "b" ? silentWitness.LocalEndPoint!.ToString() : null,
            WitnessCallTimeout = TimeSpan.FromSeconds(30),
            Log = line => { lock (log) { log.Add(line); } },
        });
        try
        {
            await using (a)
            await using (b)
            {
                await using var adminServerB = await b.StartAdminAsync("127.0.0.1", 0);
                var adminB = adminServerB.EndPoint.ToString();
                await WaitForAsync(adminB, "/standby", HttpStatusCode.OK, "b's /standby while b follows a");

                var promotion = b.PromoteAsync();
                var promoting = await WaitForAsync(adminB, "/primary", HttpStatusCode.ServiceUnavailable, "b's /primary while its promotion asks the witness", body => promotion.IsCompleted
                    ? throw new InvalidOperationException($"the promotion ended before it was seen under way: {promotion.Exception?.InnerException?.Message ?? promotion.Status.ToString()}")
                    : Reason(body)?.StartsWith("promoting", StringComparison.Ordinal) == true);
                output.WriteLine($"b promoting: {promoting}");
                const string Why = "promoting: a promotion asked for by the operator is under way (asking the witness for the lease)";
                Assert.Equal("promoting", Status(promoting));
                Assert.Equal(Why, Reason(promoting));
                var standby = await GetAsync(adminB, "/standby", HttpStatusCode.ServiceUnavailable);
                Assert.Equal("promoting", Status(standby));
                Assert.Equal(Why, Reason(standby));
                Assert.Equal("promoting", Status(await GetAsync(adminB, "/health", HttpStatusCode.OK)));
                var status = await GetAsync(adminB, "/status", HttpStatusCode.OK);
                Assert.Equal("promoting", Status(status));
                Assert.Equal("standby", JsonDocument.Parse(status).RootElement.GetProperty("role").GetString());
                var printed = string.Join('\n', await Cli.RunAsync("status", "--admin", adminB));
                Assert.Contains("\"status\": \"promoting\"", printed, StringComparison.Ordinal);
                Assert.False(promotion.IsCompleted, "the promotion waits for the witness");

                await b.DisposeAsync(); // ends the witness call: no promotion
                await Assert.ThrowsAnyAsync<Exception>(() => promotion);
            }
        }
        catch
        {
            lock (log)
            {
                output.WriteLine(string.Join('\n', log));
            }

            throw;
        }
    }

    /// <summary>
    /// <c>--standby-check-silence-ms</c> moves when <c>/standby</c> turns 503 after the primary froze (SIGSTOP): not
    /// after the default three heartbeat intervals (300 ms) but only once b has heard nothing for longer than the
    /// configured 3 s, which the body's <c>sinceLastHeardMs</c> and reason show.
    /// </summary>
    [Fact]
    public async Task Standby_check_fails_only_after_the_configured_silence()
    {
        const int SilenceMs = 3000;
        await using var pair = new PairHarness();
        NodeProcess? frozen = null;
        try
        {
            string[] options = ["--heartbeat-timeout-ms", "120000"];
            var (a, b, _) = await pair.StartConfiguredPairAsync(options, [.. options, "--standby-check-silence-ms", $"{SilenceMs}"]);
            Assert.Equal("standby", Status(await WaitForAsync(b.AdminEndpoint, "/standby", HttpStatusCode.OK, "b's check while it follows a")));

            a.Freeze();
            frozen = a;
            var silent = await WaitForAsync(b.AdminEndpoint, "/standby", HttpStatusCode.ServiceUnavailable, "b's check while a is frozen");
            output.WriteLine($"while a is frozen: {silent}");
            var heard = JsonDocument.Parse(silent).RootElement.GetProperty("sinceLastHeardMs").GetInt64();
            Assert.True(heard > SilenceMs, $"b's /standby turned 503 after {heard} ms of silence, expected only past the configured {SilenceMs} ms: {silent}");
            Assert.Contains($"(more than {SilenceMs} ms,", Reason(silent), StringComparison.Ordinal);
            Assert.Equal(heard, SilenceInReason(silent));

            a.Freeze(false);
            frozen = null;
            Assert.Equal("standby", Status(await WaitForAsync(b.AdminEndpoint, "/standby", HttpStatusCode.OK, "b's check once a has thawed")));
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
        finally
        {
            frozen?.Freeze(false); // so that the harness can kill and reap it
        }
    }

    [Fact]
    public void Standby_check_silence_must_exceed_the_heartbeat_interval()
    {
        var options = new ReplicationOptions { Peer = "127.0.0.1:1", HeartbeatInterval = TimeSpan.FromMilliseconds(100) };
        options.Validate();
        (options with { StandbyCheckSilence = TimeSpan.FromMilliseconds(101) }).Validate();
        foreach (var ms in new[] { 100, 50, 0, -1 })
        {
            var error = Assert.Throws<ArgumentException>(() => (options with { StandbyCheckSilence = TimeSpan.FromMilliseconds(ms) }).Validate());
            Assert.Equal(nameof(ReplicationOptions.StandbyCheckSilence), error.ParamName);
        }
    }

    /// <summary>
    /// The body of a following standby's check shows one silence: the reason's figure is <c>sinceLastHeardMs</c> (whole
    /// milliseconds, rounded down), and the check fails only once that figure exceeds the limit, so a 503 never says
    /// "for 3000 ms (more than 3000 ms" and a 200 never reports more silence than the limit allows.
    /// </summary>
    [Theory]
    [InlineData(3001.7, 503)] // rounded to nearest, the reason said 3002 ms while the field said 3001
    [InlineData(3000.7, 200)] // compared unrounded, it failed saying 3001 ms while the field said 3000
    [InlineData(3000.2, 200)]
    [InlineData(2999.9, 200)]
    public void Standby_check_reports_the_silence_it_decides_by_once(double sinceLastHeardMs, int expected)
    {
        var (code, contentType, bytes) = ReplicatedNode.FollowingStandbyCheck(3, "a", TimeSpan.FromMilliseconds(sinceLastHeardMs), lag: 0, silence: TimeSpan.FromMilliseconds(3000), maxLag: null);
        var body = System.Text.Encoding.UTF8.GetString(bytes);
        Assert.Equal("application/json", contentType);
        var heard = JsonDocument.Parse(body).RootElement.GetProperty("sinceLastHeardMs").GetInt64();
        Assert.Equal((long)Math.Floor(sinceLastHeardMs), heard);
        Assert.True(code == expected, $"{code}, expected {expected}: {body}");
        if (code == 503)
        {
            Assert.Equal(heard, SilenceInReason(body));
            Assert.Equal($"nothing from the primary 'a' for {heard} ms (more than 3000 ms, the standby check's silence limit): it may have frozen", Reason(body));
        }
        else
        {
            Assert.Null(Reason(body));
        }
    }

    // Accepts connections (the kernel does) and never reads or answers: a peer or witness whose host froze.
    private static Socket SilentListener()
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp); // its address reads 127.0.0.1:port
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        socket.Listen(256);
        return socket;
    }

    private static long LagRecords(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.GetProperty("lagRecords").GetInt64();
    }

    // The most a socket's send buffer grows to (Linux: the third field of tcp_wmem).
    private static long TcpSendBufferMax()
    {
        const string Path = "/proc/sys/net/ipv4/tcp_wmem";
        return File.Exists(Path) ? long.Parse(File.ReadAllText(Path).Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)[2], System.Globalization.CultureInfo.InvariantCulture) : 4 << 20;
    }

    // The silence a reason names ("nothing from the primary 'a' for N ms …").
    private static long SilenceInReason(string json)
    {
        var match = System.Text.RegularExpressions.Regex.Match(Reason(json) ?? "", @" for (\d+) ms");
        Assert.True(match.Success, $"no silence in the reason: {json}");
        return long.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    private static string? Reason(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.TryGetProperty("reason", out var reason) ? reason.GetString() : null;
    }

    private static string? Status(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.GetProperty("status").GetString();
    }

    private static async Task<string> GetAsync(string admin, string path, HttpStatusCode expected)
    {
        var (status, contentType, body) = await RequestAsync(admin, path);
        Assert.True(status == expected, $"GET {path}: {(int)status} {body}, expected {(int)expected}");
        Assert.Equal("application/json", contentType);
        return body;
    }

    // Polls until the answer has the expected code and body (the roles settle in the background), with a deadline.
    private static async Task<string> WaitForAsync(string admin, string path, HttpStatusCode expected, string because, Func<string, bool>? body = null)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var (status, contentType, text) = await RequestAsync(admin, path);
            if (status == expected && (body is null || body(text)))
            {
                Assert.Equal("application/json", contentType);
                return text;
            }

            if (deadline.Elapsed > Eventually.DefaultTimeout)
            {
                throw new TimeoutException($"{because}: GET {path} still {(int)status} {text} after {Eventually.DefaultTimeout.TotalSeconds} s, expected {(int)expected}{(body is null ? "" : " and a body as described")}");
            }

            await Task.Delay(20); // polling interval of a condition with a deadline
        }
    }

    private static async Task<(HttpStatusCode Status, string? ContentType, string Body)> RequestAsync(string admin, string path)
    {
        using var response = await s_http.GetAsync(new Uri($"http://{admin}{path}"));
        return (response.StatusCode, response.Content.Headers.ContentType?.MediaType, await response.Content.ReadAsStringAsync());
    }
}
