using System.Diagnostics;
using System.Net;
using System.Text.Json;
using FastBroker.Client;
using FastBroker.Replication;
using Xunit.Abstractions;
using static FastBroker.ReplicationTests.Failover.AdminChecks;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>GET /standby</c> on a pair's admin port fails on a standby that has stopped hearing from its primary (frozen: its
/// link stays open and silent) for longer than its silence limit (<c>--standby-check-silence-ms</c>), and, with
/// <c>?lag=N</c>, on one that lacks more than N records of the heads its primary last reported. Which node passes
/// which check by role is in <see cref="AdminRoleCheckTests"/>.
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class AdminStandbyCheckTests(ITestOutputHelper output)
{
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
}
