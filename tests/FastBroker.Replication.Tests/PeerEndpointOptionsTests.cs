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
