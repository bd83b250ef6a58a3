using FastBroker.Replication;

namespace FastBroker.ReplicationTests;

/// <summary>
/// <see cref="ReplicationOptions.Validate"/> checks only the syntax of <see cref="ReplicationOptions.Peer"/> and
/// <see cref="ReplicationOptions.Witness"/> (a host name is resolved at connect time), and the range of the connect and
/// witness-call timeouts.
/// </summary>
public class PeerEndpointOptionsTests
{
    private static readonly ReplicationOptions s_options = new() { NodeId = "a", Peer = "127.0.0.1:7410" };

    /// <summary>
    /// A host name was refused ("a host name is not resolved and is refused"): <c>standby-1:7410</c> and
    /// <c>localhost:7410</c> are what operators write, and what Kafka, NATS and Redis take.
    /// </summary>
    [Theory]
    [InlineData("localhost:7410")]
    [InlineData("standby-1:7410")]
    [InlineData("broker_b.example.com:1")]
    [InlineData("broker-b.example.com.:65535")]
    [InlineData("10.0.0.2:7410")]
    [InlineData("[::1]:7410")]
    [InlineData("[fd00::2]:7410")]
    public void A_host_name_or_an_IP_address_with_a_port_is_accepted(string endpoint)
    {
        Assert.True(ReplicationOptions.IsValidEndpoint(endpoint), endpoint);
        (s_options with { Peer = endpoint }).Validate();
        (s_options with { Witness = endpoint }).Validate();
    }

    /// <summary>Anything that is not host:port with a host name or an IP address and a port from 1 to 65535 is refused by name.</summary>
    [Theory]
    [InlineData("standby-1")]
    [InlineData(":7410")]
    [InlineData("standby-1:0")]
    [InlineData("standby-1:65536")]
    [InlineData("standby-1:+7410")]
    [InlineData("standby 1:7410")]
    [InlineData("-standby:7410")]
    [InlineData("standby-:7410")]
    [InlineData("a..b:7410")]
    [InlineData("10.0.0.256:7410")]
    [InlineData("http://standby-1:7410")]
    [InlineData("[127.0.0.1]:7410")]
    [InlineData("[::1]7410")]
    [InlineData("[::1]")]
    public void Anything_else_is_refused_by_name(string endpoint)
    {
        Assert.False(ReplicationOptions.IsValidEndpoint(endpoint), endpoint);
        foreach (var (options, name) in new[] { (s_options with { Peer = endpoint }, "Peer"), (s_options with { Witness = endpoint }, "Witness") })
        {
            var refused = Assert.Throws<ArgumentException>(options.Validate);
            Assert.Equal(name, refused.ParamName);
            Assert.Contains($"{name} '{endpoint}' is not {ReplicationOptions.EndpointRule}", refused.Message, StringComparison.Ordinal);
        }
    }

    /// <summary>
    /// The host was read by <c>IPAddress.TryParse</c>, which takes IPv4 forms with parts left out (<c>10.0.1</c> is
    /// 10.0.0.1, <c>127.1</c> 127.0.0.1, <c>1</c> 0.0.0.1), in octal (<c>010.0.0.1</c> is 8.0.0.1) or hex, a single 32-bit
    /// number, and an IPv6 address without brackets, whose last group may be the port or part of the address: an
    /// operator's typo connected to another address. Only four decimal numbers, an IPv6 address in brackets or a host
    /// name is accepted, and the reason names the part at fault.
    /// </summary>
    [Theory]
    [InlineData("10.0.1:7410", "expected an IPv4 address of four numbers 0 to 255 without leading zeros (10.0.0.2), not '10.0.1'")]
    [InlineData("127.1:7410", "expected an IPv4 address of four numbers 0 to 255 without leading zeros (10.0.0.2), not '127.1'")]
    [InlineData("1:7410", "expected an IPv4 address of four numbers 0 to 255 without leading zeros (10.0.0.2), not '1'")]
    [InlineData("010.0.0.1:7410", "expected an IPv4 address of four numbers 0 to 255 without leading zeros (10.0.0.2), not '010.0.0.1'")]
    [InlineData("2130706433:7410", "expected an IPv4 address of four numbers 0 to 255 without leading zeros (10.0.0.2), not '2130706433'")]
    [InlineData("0x7f.0.0.1:7410", "expected a host name (labels of 1 to 63 letters, digits, '-' or '_'")]
    [InlineData("0x7f000001:7410", "expected an IPv4 address of four decimal numbers (10.0.0.2) or a host name, not '0x7f000001', which reads as an IP address in another form")]
    [InlineData("::1:7410", "expected an IPv6 address in brackets ([::1]:port): without them the port cannot be told apart from the address")]
    [InlineData("fd00::2:7410", "expected an IPv6 address in brackets ([fd00::2]:port)")]
    public void A_shortened_or_other_base_IPv4_address_or_an_unbracketed_IPv6_one_is_refused(string endpoint, string reason)
    {
        Assert.False(ReplicationOptions.IsValidEndpoint(endpoint), $"{endpoint} is accepted");
        Assert.False(ReplicationOptions.IsValidEndpoint(endpoint, out var why));
        Assert.Contains(reason, why, StringComparison.Ordinal);
        foreach (var (options, name) in new[] { (s_options with { Peer = endpoint }, "Peer"), (s_options with { Witness = endpoint }, "Witness") })
        {
            var refused = Assert.Throws<ArgumentException>(options.Validate);
            Assert.Equal(name, refused.ParamName);
            Assert.Contains($"{name} '{endpoint}' is not {ReplicationOptions.EndpointRule}: {reason}", refused.Message, StringComparison.Ordinal);
        }
    }

    /// <summary>
    /// The address a node or the witness binds (<see cref="ReplicationOptions.Host"/>, <see cref="WitnessOptions.Host"/>)
    /// follows the same rule without a port (an IPv6 address in brackets or not): <c>0</c> bound 0.0.0.0, every interface.
    /// </summary>
    [Theory]
    [InlineData("0", "expected an IPv4 address of four numbers 0 to 255 without leading zeros (10.0.0.2), not '0'")]
    [InlineData("127.1", "expected an IPv4 address of four numbers 0 to 255 without leading zeros (10.0.0.2), not '127.1'")]
    [InlineData("10.0.0.256", "expected an IPv4 address of four numbers 0 to 255 without leading zeros (10.0.0.2), not '10.0.0.256'")]
    [InlineData("[127.0.0.1]", "expected an IPv6 address, not '[127.0.0.1]'")]
    [InlineData("host name", "expected a host name")]
    [InlineData("127.0.0.1:7410", "expected an IPv6 address, not '127.0.0.1:7410'")]
    public void A_bind_address_in_another_form_is_refused_by_name(string host, string reason)
    {
        Assert.False(ReplicationOptions.IsValidHost(host, out var why), $"{host} is accepted");
        Assert.Contains(reason, why, StringComparison.Ordinal);
        var node = Assert.Throws<ArgumentException>((s_options with { Host = host }).Validate);
        Assert.Equal(nameof(ReplicationOptions.Host), node.ParamName);
        Assert.Contains($"Host '{host}' is not an address to bind: {reason}", node.Message, StringComparison.Ordinal);
        var witness = Assert.Throws<ArgumentException>((WitnessOptions.Default with { Host = host }).Validate);
        Assert.Equal(nameof(WitnessOptions.Host), witness.ParamName);
        Assert.Contains($"Host '{host}' is not an address to bind: {reason}", witness.Message, StringComparison.Ordinal);
    }

    /// <summary>The bind addresses the rule accepts.</summary>
    [Theory]
    [InlineData("0.0.0.0")]
    [InlineData("127.0.0.1")]
    [InlineData("::")]
    [InlineData("[::1]")]
    [InlineData("localhost")]
    [InlineData("node-1.example.com")]
    public void A_bind_address_of_four_numbers_IPv6_or_a_host_name_is_accepted(string host)
    {
        Assert.True(ReplicationOptions.IsValidHost(host, out var why), why);
        (s_options with { Host = host }).Validate();
        (WitnessOptions.Default with { Host = host }).Validate();
    }

    /// <summary>
    /// The public <see cref="WitnessClient"/> took any host before the last colon (<c>127.1:7402</c> connected to
    /// 127.0.0.1, <c>::1:7402</c> to ::1 port 7402): it parses its endpoint as <see cref="ReplicationOptions.Witness"/>
    /// is, and refuses the rest naming the parameter.
    /// </summary>
    [Theory]
    [InlineData("127.1:7402", "not '127.1'")]
    [InlineData("10.0.1:7402", "not '10.0.1'")]
    [InlineData("::1:7402", "expected an IPv6 address in brackets")]
    [InlineData("0x7f000001:7402", "reads as an IP address in another form")]
    [InlineData("[10.0.0.1]:7402", "expected an IPv6 address between the brackets")]
    [InlineData("wit ness:7402", "expected a host name")]
    public void The_witness_client_refuses_an_endpoint_the_options_refuse(string endpoint, string reason)
    {
        var refused = Assert.Throws<ArgumentException>(() => new WitnessClient(endpoint));
        Assert.Equal("endpoint", refused.ParamName);
        Assert.Contains($"endpoint '{endpoint}' is not {ReplicationOptions.EndpointRule}: ", refused.Message, StringComparison.Ordinal);
        Assert.Contains(reason, refused.Message, StringComparison.Ordinal);
    }

    /// <summary>A node's replication listener binds a host name (it threw FormatException for any name but localhost).</summary>
    [Fact]
    public async Task A_node_binds_its_replication_listener_to_a_host_name()
    {
        var name = System.Net.Dns.GetHostName();
        var addresses = await System.Net.Dns.GetHostAddressesAsync(name);
        Assert.True(addresses.Length > 0 && name != "localhost" && ReplicationOptions.IsValidHost(name, out _), $"this host's name '{name}' does not resolve to an address this test can bind");
        using var dir = new FastBroker.Testing.TempDirectory("fastbroker-bind-name");
        var options = s_options with { Host = name, Port = 0, DataDirectory = dir.Combine("node"), Peer = "127.0.0.1:1", InitialRole = NodeRole.Primary, PeerWait = TimeSpan.Zero };
        await using var node = await ReplicatedNode.StartAsync(FastBroker.BrokerOptions.Default, FastBroker.Server.ServerOptions.Default with { Port = 0 }, options);
        Assert.Contains(node.ReplicationEndPoint.Address, addresses);
    }

    /// <summary>
    /// WitnessCallTimeout was checked against the lease TTL without a witness: a node that makes no witness call was
    /// refused for a value it does not use (here, 5 s with the default 1 s lease). With a witness it is still checked.
    /// </summary>
    [Fact]
    public void The_witness_call_timeout_is_not_checked_without_a_witness()
    {
        (s_options with { WitnessCallTimeout = TimeSpan.FromSeconds(5) }).Validate();
        (s_options with { WitnessCallTimeout = TimeSpan.Zero, HeartbeatTimeout = TimeSpan.FromMilliseconds(200) }).Validate();
        var refused = Assert.Throws<ArgumentException>((s_options with { Witness = "witness-1:7402", WitnessCallTimeout = TimeSpan.FromSeconds(5) }).Validate);
        Assert.Equal(nameof(ReplicationOptions.WitnessCallTimeout), refused.ParamName);
    }

    /// <summary>A label longer than 63 characters or a name longer than 253 is not a host name.</summary>
    [Fact]
    public void A_name_longer_than_DNS_allows_is_refused()
    {
        Assert.True(ReplicationOptions.IsValidEndpoint($"{new string('a', 63)}:1"));
        Assert.False(ReplicationOptions.IsValidEndpoint($"{new string('a', 64)}:1"));
        var longest = string.Join('.', Enumerable.Repeat(new string('a', 49), 5)) + ".abc"; // 253
        Assert.True(ReplicationOptions.IsValidEndpoint($"{longest}:1"), longest.Length.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.False(ReplicationOptions.IsValidEndpoint($"{longest}d:1"));
    }

    /// <summary>
    /// ConnectTimeout: above 0, at most four heartbeat timeouts (2 s by default); the default is 1 s, or four heartbeat
    /// timeouts when shorter (so a short heartbeat timeout needs no connect timeout of its own).
    /// </summary>
    [Fact]
    public void The_connect_timeout_is_positive_and_at_most_four_heartbeat_timeouts()
    {
        foreach (var bad in new[] { TimeSpan.Zero, TimeSpan.FromMilliseconds(-1), TimeSpan.FromMilliseconds(2001) })
        {
            var refused = Assert.Throws<ArgumentException>((s_options with { ConnectTimeout = bad }).Validate);
            Assert.Equal(nameof(ReplicationOptions.ConnectTimeout), refused.ParamName);
            Assert.Contains($"ConnectTimeout ({bad.TotalMilliseconds} ms) must be above 0 and at most four HeartbeatTimeouts (2000 ms)", refused.Message, StringComparison.Ordinal);
        }

        (s_options with { ConnectTimeout = TimeSpan.FromMilliseconds(2000) }).Validate();
        (s_options with { ConnectTimeout = TimeSpan.FromTicks(1) }).Validate();
        (s_options with { ConnectTimeout = TimeSpan.FromSeconds(8), HeartbeatTimeout = TimeSpan.FromSeconds(2) }).Validate();
        Assert.Equal(TimeSpan.FromSeconds(1), s_options.EffectiveConnectTimeout);
        Assert.Equal(TimeSpan.FromMilliseconds(600), (s_options with { HeartbeatTimeout = TimeSpan.FromMilliseconds(150) }).EffectiveConnectTimeout);
        Assert.Equal(TimeSpan.FromMilliseconds(1500), (s_options with { ConnectTimeout = TimeSpan.FromMilliseconds(1500) }).EffectiveConnectTimeout);
    }

    /// <summary>
    /// WitnessCallTimeout: above 0, at most the lease TTL (twice the heartbeat timeout, 1 s, by default); the default
    /// is 1 s, or the lease TTL when shorter.
    /// </summary>
    [Fact]
    public void The_witness_call_timeout_is_positive_and_at_most_the_lease_TTL()
    {
        var witnessed = s_options with { Witness = "witness-1:7402" };
        foreach (var bad in new[] { TimeSpan.Zero, TimeSpan.FromMilliseconds(-5), TimeSpan.FromMilliseconds(1001) })
        {
            var refused = Assert.Throws<ArgumentException>((witnessed with { WitnessCallTimeout = bad }).Validate);
            Assert.Equal(nameof(ReplicationOptions.WitnessCallTimeout), refused.ParamName);
            Assert.Contains($"WitnessCallTimeout ({bad.TotalMilliseconds} ms) must be above 0 and at most the lease TTL (1000 ms, twice HeartbeatTimeout)", refused.Message, StringComparison.Ordinal);
        }

        var withTtl = Assert.Throws<ArgumentException>((witnessed with { LeaseTtl = TimeSpan.FromSeconds(3), WitnessCallTimeout = TimeSpan.FromSeconds(4) }).Validate);
        Assert.Contains("WitnessCallTimeout (4000 ms) must be above 0 and at most the lease TTL (3000 ms): ", withTtl.Message, StringComparison.Ordinal);
        Assert.Contains("Raise LeaseTtl with it", withTtl.Message, StringComparison.Ordinal);

        (witnessed with { WitnessCallTimeout = TimeSpan.FromSeconds(1) }).Validate();
        (witnessed with { LeaseTtl = TimeSpan.FromSeconds(3), WitnessCallTimeout = TimeSpan.FromSeconds(3) }).Validate();
        Assert.Equal(TimeSpan.FromSeconds(1), witnessed.EffectiveWitnessCallTimeout);
        Assert.Equal(TimeSpan.FromMilliseconds(400), (witnessed with { HeartbeatTimeout = TimeSpan.FromMilliseconds(200) }).EffectiveWitnessCallTimeout);
        Assert.Equal(TimeSpan.FromMilliseconds(700), (witnessed with { WitnessCallTimeout = TimeSpan.FromMilliseconds(700) }).EffectiveWitnessCallTimeout);
    }
}
