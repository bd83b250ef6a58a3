using System.Globalization;
using FastBroker.Replication;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests;

/// <summary>
/// Settings a node (or a witness) cannot run with are refused when it starts (<see cref="ReplicationOptions.Validate"/>, called by
/// <see cref="ReplicatedNode.StartAsync"/>), naming the option, its value, the range and why, before anything is
/// opened or bound; and the edges of each range start.
/// </summary>
public class ReplicationOptionsLimitsTests
{
    /// <summary>
    /// With a witness and no LeaseTtl the lease lasts twice the heartbeat timeout, and the witness grants 50 ms to 60 s:
    /// a 40 s heartbeat timeout asked for an 80 s lease, and the node started, stayed Starting and logged "unexpected
    /// ArgumentOutOfRangeException: A lease TTL is 50..60000 ms" every heartbeat.
    /// </summary>
    [Fact]
    public async Task A_witnessed_heartbeat_timeout_whose_lease_the_witness_cannot_grant_is_refused_at_start()
    {
        await using var witness = await WitnessFixture.StartAsync();
        using var dir = new TempDirectory("fastbroker-options-limits");
        var options = Options(dir, witness.Endpoint) with { HeartbeatTimeout = TimeSpan.FromSeconds(40) };

        var refused = await RefusedAsync(options);

        Assert.Equal(nameof(ReplicationOptions.HeartbeatTimeout), refused.ParamName);
        foreach (var part in new[] { "HeartbeatTimeout (40000 ms)", "25 to 30000 ms", "twice the heartbeat timeout (80000 ms here)", "50 to 60000 ms", "LeaseTtl" })
        {
            Assert.Contains(part, refused.Message, StringComparison.Ordinal);
        }

        Assert.False(Directory.Exists(options.DataDirectory), "nothing is created for a node refused at start");
        Assert.Null(witness.Server.Holder);

        var tooShort = await RefusedAsync(options with { HeartbeatInterval = TimeSpan.FromMilliseconds(5), HeartbeatTimeout = TimeSpan.FromMilliseconds(20) });
        Assert.Equal(nameof(ReplicationOptions.HeartbeatTimeout), tooShort.ParamName);
        Assert.Contains("HeartbeatTimeout (20 ms) must be 25 to 30000 ms with a Witness", tooShort.Message, StringComparison.Ordinal);
    }

    /// <summary>An explicit LeaseTtl outside what the witness grants (50 ms to 60 s) is refused by name.</summary>
    [Fact]
    public async Task A_lease_TTL_the_witness_cannot_grant_is_refused_at_start()
    {
        await using var witness = await WitnessFixture.StartAsync();
        using var dir = new TempDirectory("fastbroker-options-limits");
        var options = Options(dir, witness.Endpoint);

        foreach (var (ttl, shown) in new[] { (TimeSpan.FromMilliseconds(60_001), "LeaseTtl (60001 ms)"), (TimeSpan.FromMilliseconds(49), "LeaseTtl (49 ms)") })
        {
            var refused = await RefusedAsync(options with { LeaseTtl = ttl });
            Assert.Equal(nameof(ReplicationOptions.LeaseTtl), refused.ParamName);
            Assert.Contains($"{shown} must be 50 to 60000 ms: the witness grants a lease of at most 60000 ms", refused.Message, StringComparison.Ordinal);
        }

        Assert.False(Directory.Exists(options.DataDirectory), "nothing is created for a node refused at start");
    }

    /// <summary>A consumer visibility that is not an ack mode is refused by name, before anything is created.</summary>
    [Fact]
    public async Task A_consumer_visibility_that_is_not_an_ack_mode_is_refused_at_start()
    {
        using var dir = new TempDirectory("fastbroker-options-limits");
        var options = Options(dir, null) with { ConsumerVisibility = (AckMode)7 };

        var refused = await RefusedAsync(options);

        Assert.Equal(nameof(ReplicationOptions.ConsumerVisibility), refused.ParamName);
        Assert.Contains("ConsumerVisibility (7) is not an ack mode", refused.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(options.DataDirectory), "nothing is created for a node refused at start");
    }

    /// <summary>
    /// The nodes wait up to one heartbeat interval at a time, and the runtime's timed waits take at most int.MaxValue ms
    /// (about 24.8 days): a primary with a longer interval threw ArgumentOutOfRangeException from its watch loop every
    /// time round, and so never watched its peer for a newer epoch.
    /// </summary>
    [Fact]
    public async Task A_heartbeat_interval_longer_than_the_runtime_can_wait_is_refused_at_start()
    {
        using var dir = new TempDirectory("fastbroker-options-limits");
        var interval = ReplicationOptions.MaxHeartbeatInterval + TimeSpan.FromMilliseconds(1);
        var options = Options(dir, witness: null) with { HeartbeatInterval = interval, HeartbeatTimeout = interval * 2 };

        var refused = await RefusedAsync(options);

        Assert.Equal(nameof(ReplicationOptions.HeartbeatInterval), refused.ParamName);
        Assert.Contains("HeartbeatInterval (2147483648 ms) must be at most 2147483647 ms", refused.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(options.DataDirectory), "nothing is created for a node refused at start");
    }

    /// <summary>
    /// The edges that start: a witnessed node at the longest heartbeat timeout (a 60 s lease, which a witness granting
    /// at most 10 s grants as 10 s) takes the lease; an explicit LeaseTtl lets the heartbeat timeout go past 30 s; and
    /// without a witness the heartbeat timeout has no such bound.
    /// </summary>
    [Fact]
    public async Task The_longest_settings_in_range_are_accepted_and_a_witnessed_node_takes_the_lease()
    {
        await using var witness = await WitnessFixture.StartAsync();
        using var dir = new TempDirectory("fastbroker-options-limits");
        var options = Options(dir, witness.Endpoint) with { HeartbeatTimeout = TimeSpan.FromSeconds(30) };

        (options with { HeartbeatTimeout = TimeSpan.FromMinutes(2), LeaseTtl = TimeSpan.FromSeconds(60) }).Validate();
        (options with { Witness = null, HeartbeatTimeout = TimeSpan.FromDays(30) }).Validate();
        (options with { Witness = null, HeartbeatInterval = ReplicationOptions.MaxHeartbeatInterval, HeartbeatTimeout = TimeSpan.FromDays(30) }).Validate();

        await using var node = await ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, options);
        Assert.True(await node.WaitForRoleAsync(NodeRole.Primary, Eventually.DefaultTimeout), $"the node takes the lease and becomes primary (role {node.Role})");
        Assert.Equal("a", witness.Server.Holder);
    }

    /// <summary>
    /// The witness arms each connection's idle timeout with CancelAfter, which throws past the runtime's longest timed
    /// wait (about 49.7 days on .NET 10): a witness with a longer IdleTimeout started and then failed every connection
    /// it served. It is refused at start, by name.
    /// </summary>
    [Fact]
    public async Task A_witness_idle_timeout_longer_than_the_runtime_can_wait_is_refused_at_start()
    {
        using var dir = new TempDirectory("fastbroker-options-limits");
        var options = WitnessOptions.Default with { Port = 0, DataDirectory = dir.Combine("w"), IdleTimeout = TimeSpan.FromDays(50) };

        WitnessServer? started = null;
        try
        {
            started = await WitnessServer.StartAsync(options);
            await using var client = new WitnessClient($"127.0.0.1:{started.EndPoint.Port}");
            Assert.Fail($"started with IdleTimeout {options.IdleTimeout}; a STATUS call answered: {await client.StatusAsync()}");
        }
        catch (ArgumentOutOfRangeException e)
        {
            Assert.Equal(nameof(WitnessOptions.IdleTimeout), e.ParamName);
        }
        finally
        {
            if (started is not null)
            {
                await started.StopAsync();
            }
        }

        Assert.False(Directory.Exists(options.DataDirectory), "nothing is created for a witness refused at start");
        var longest = options with { IdleTimeout = TimeSpan.FromMilliseconds(int.MaxValue) };
        var server = await WitnessServer.StartAsync(longest);
        try
        {
            await using var client = new WitnessClient($"127.0.0.1:{server.EndPoint.Port}");
            Assert.Equal(LeaseResultKind.Status, (await client.StatusAsync()).Kind);
        }
        finally
        {
            await server.StopAsync();
        }
    }

    /// <summary>
    /// A witness grants a lease of at most 60 s (the protocol's longest), but after a restart it keeps the lease for its
    /// recorded holder for its whole MaxTtl: a MaxTtl of an hour started, granted 60 s leases, and after a restart held
    /// up every failover for an hour. MaxTtl outside 50 ms to 60 s is refused at start, by name, before anything is
    /// created; the edges start and grant what they say.
    /// </summary>
    [Fact]
    public async Task A_witness_max_ttl_outside_the_leases_the_protocol_carries_is_refused_at_start()
    {
        using var dir = new TempDirectory("fastbroker-options-limits");
        var options = WitnessOptions.Default with { Port = 0, DataDirectory = dir.Combine("w") };
        foreach (var (maxTtl, shown) in new[] { (TimeSpan.FromHours(1), "MaxTtl (3600000 ms)"), (TimeSpan.FromMilliseconds(60_001), "MaxTtl (60001 ms)"), (TimeSpan.FromMilliseconds(49), "MaxTtl (49 ms)") })
        {
            WitnessServer? started = null;
            try
            {
                started = await WitnessServer.StartAsync(options with { MaxTtl = maxTtl });
                await using var client = new WitnessClient($"127.0.0.1:{started.EndPoint.Port}");
                Assert.Fail($"started with MaxTtl {maxTtl}; an ACQUIRE of 60 s answered: {await client.AcquireAsync("a", 0, TimeSpan.FromSeconds(60))}");
            }
            catch (ArgumentOutOfRangeException e)
            {
                Assert.Equal(nameof(WitnessOptions.MaxTtl), e.ParamName);
                Assert.Contains($"{shown} must be 50 to 60000 ms: a lease is granted for at most 60000 ms, and after a restart the witness keeps the lease for its recorded holder for MaxTtl", e.Message, StringComparison.Ordinal);
            }
            finally
            {
                if (started is not null)
                {
                    await started.StopAsync();
                }
            }
        }

        Assert.False(Directory.Exists(options.DataDirectory), "nothing is created for a witness refused at start");
        foreach (var edge in new[] { WitnessOptions.MaxMaxTtl, WitnessOptions.MinMaxTtl })
        {
            var server = await WitnessServer.StartAsync(options with { MaxTtl = edge, DataDirectory = dir.Combine($"w{edge.TotalMilliseconds}") });
            try
            {
                await using var client = new WitnessClient($"127.0.0.1:{server.EndPoint.Port}");
                var granted = await client.AcquireAsync("a", 0, TimeSpan.FromSeconds(60));
                Assert.True(granted.IsGranted, $"MaxTtl {edge}: {granted}");
                Assert.Equal(edge, granted.Ttl);
            }
            finally
            {
                await server.StopAsync();
            }
        }
    }

    /// <summary>
    /// A DENIED answer states the holder's lease plus the safety margin as its remaining time, which the protocol carries
    /// up to int.MaxValue ms (the client refuses more as an invalid answer): a witness with a margin of 30 days started,
    /// and every node asking for the lease another held got an error instead of a denial. A margin past
    /// int.MaxValue - 60000 ms (what the longest lease leaves) is refused at start, by name; the longest one starts and
    /// its denial is read as one.
    /// </summary>
    [Fact]
    public async Task A_witness_safety_margin_past_the_remaining_time_the_protocol_carries_is_refused_at_start()
    {
        using var dir = new TempDirectory("fastbroker-options-limits");
        var options = WitnessOptions.Default with { Port = 0, DataDirectory = dir.Combine("w"), MaxTtl = WitnessOptions.MaxMaxTtl };
        foreach (var margin in new[] { TimeSpan.FromDays(30), WitnessOptions.MaxSafetyMargin + TimeSpan.FromMilliseconds(1) })
        {
            WitnessServer? started = null;
            try
            {
                started = await WitnessServer.StartAsync(options with { SafetyMargin = margin });
                await using var a = new WitnessClient($"127.0.0.1:{started.EndPoint.Port}");
                await using var b = new WitnessClient($"127.0.0.1:{started.EndPoint.Port}");
                var granted = await a.AcquireAsync("a", 0, TimeSpan.FromSeconds(60));
                Assert.Fail($"started with SafetyMargin {margin}; a's ACQUIRE answered {granted}, then b's: {await b.AcquireAsync("b", 0, TimeSpan.FromSeconds(60))}");
            }
            catch (ArgumentOutOfRangeException e)
            {
                Assert.Equal(nameof(WitnessOptions.SafetyMargin), e.ParamName);
                Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"SafetyMargin ({margin.TotalMilliseconds} ms) must be 0 to 2147423647 ms"), e.Message, StringComparison.Ordinal);
            }
            finally
            {
                if (started is not null)
                {
                    await started.StopAsync();
                }
            }
        }

        Assert.False(Directory.Exists(options.DataDirectory), "nothing is created for a witness refused at start");
        var server = await WitnessServer.StartAsync(options with { SafetyMargin = WitnessOptions.MaxSafetyMargin });
        try
        {
            await using var a = new WitnessClient($"127.0.0.1:{server.EndPoint.Port}");
            await using var b = new WitnessClient($"127.0.0.1:{server.EndPoint.Port}");
            Assert.True((await a.AcquireAsync("a", 0, TimeSpan.FromSeconds(60))).IsGranted);
            var denied = await b.AcquireAsync("b", 0, TimeSpan.FromSeconds(60));
            Assert.True(denied.Kind == LeaseResultKind.Denied, $"the longest margin's denial: {denied}");
            Assert.InRange(denied.Remaining, WitnessOptions.MaxSafetyMargin, TimeSpan.FromMilliseconds(int.MaxValue));
        }
        finally
        {
            await server.StopAsync();
        }
    }

    private static ReplicationOptions Options(TempDirectory dir, string? witness) => new()
    {
        NodeId = "a",
        DataDirectory = dir.Combine("a"),
        Port = 0,
        Peer = "127.0.0.1:1", // nobody: the node decides alone
        Witness = witness,
        InitialRole = NodeRole.Primary,
        PeerWait = TimeSpan.Zero,
    };

    /// <summary>The refusal of <see cref="ReplicatedNode.StartAsync"/> with <paramref name="options"/>.</summary>
    private static async Task<ArgumentException> RefusedAsync(ReplicationOptions options)
    {
        ReplicatedNode? started = null;
        try
        {
            started = await ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, options);
        }
        catch (ArgumentException e)
        {
            return e;
        }
        finally
        {
            if (started is not null)
            {
                await started.DisposeAsync();
            }
        }

        Assert.Fail($"started with HeartbeatInterval {options.HeartbeatInterval}, HeartbeatTimeout {options.HeartbeatTimeout}, LeaseTtl {options.LeaseTtl?.ToString() ?? "(none)"}, witness {options.Witness ?? "(none)"}: expected a refusal");
        return null!;
    }
}
