using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using FastBroker.Replication;
using FastBroker.Server;
using FastBroker.Testing;
using Xunit.Abstractions;
using static FastBroker.ReplicationTests.Failover.AdminAcrossRoleChange;
using static FastBroker.ReplicationTests.Failover.AdminChecks;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A load balancer's health check reads the HTTP code only: on a pair's admin ports <c>GET /primary</c> is 200 on the
/// serving primary alone and <c>GET /standby</c> on a standby following it alone, both 503 elsewhere, and they change
/// with a promotion; <c>GET /health</c> stays 200 on both (liveness). A node that does not serve in the role asked
/// about says why, and which status it is in (starting, fenced, stopping, promoting). How <c>GET /standby</c> judges a
/// standby's silence and lag is in <see cref="AdminStandbyCheckTests"/>.
/// </summary>
public sealed class AdminRoleCheckTests(ITestOutputHelper output)
{
    [Fact]
    public Task Primary_and_standby_checks_answer_200_only_on_the_node_in_that_role_and_follow_a_promotion() =>
        WithAdminPairAsync(output, async (a, b, adminA, adminB) =>
        {
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
        });

    /// <summary>
    /// <c>GET /primary</c> on a node that does not serve as primary answers 503 with why, in one line, in each state a
    /// pair reaches: starting (deciding), standby following the primary, fenced (a newer primary exists: stepping down,
    /// then rejoining), standby following no one, stopping. a's peer address is a socket that accepts and never answers
    /// (a frozen host): each of a's probes of it waits out a's whole probe timeout (5 s), which holds a in the states
    /// that otherwise pass within a probe. b reaches a directly.
    /// </summary>
    [Fact]
    public async Task Primary_check_says_why_a_node_does_not_serve_as_primary()
    {
        using var dir = new TempDirectory();
        using var silentPeer = SilentListener();
        var log = new List<string>();
        var slowProbes = TimeSpan.FromSeconds(5);
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
            LeaseTtl = TimeSpan.FromSeconds(30), // the call timeout is at most the lease TTL
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

    // Accepts connections (the kernel does) and never reads or answers: a peer or witness whose host froze.
    private static Socket SilentListener()
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp); // its address reads 127.0.0.1:port
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        socket.Listen(256);
        return socket;
    }
}
