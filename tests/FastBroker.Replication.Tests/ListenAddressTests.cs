using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using FastBroker.Net;
using FastBroker.Replication;
using FastBroker.ReplicationTests.Failover;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests;

/// <summary>
/// The witness, a node's replication listener and its admin endpoint bind a host by the broker listener's rule
/// (<c>HostAddress.ListenRule</c>): an IP address as given, a host name's first IPv4 address (else its first
/// address), so <c>localhost</c> binds 127.0.0.1 whatever the resolver lists first. A node checks its
/// <see cref="ServerOptions"/> at start, not at its first promotion. A witness client resolves a name again at every
/// reconnect.
/// </summary>
public class ListenAddressTests
{
    /// <summary>Resolves to ::1 first, as <c>localhost</c> does where /etc/hosts lists both (glibc sorts ::1 first).</summary>
    private const string DualStackName = "dual-stack-first-v6.test";

    private const string Unresolvable = "no-such-host.invalid"; // RFC 6761: never resolves

    static ListenAddressTests() => TestNames.Set(DualStackName, IPAddress.IPv6Loopback, IPAddress.Loopback);

    [Theory]
    [InlineData("localhost")]
    [InlineData(DualStackName)]
    public async Task The_witness_binds_a_names_IPv4_address(string host)
    {
        using var dir = new TempDirectory();
        await using var witness = await WitnessServer.StartAsync(WitnessOptions.Default with { Host = host, Port = 0, DataDirectory = dir.Path });
        Assert.Equal(IPAddress.Loopback, witness.EndPoint.Address);
        await AssertAcceptsAsync(IPAddress.Loopback, witness.EndPoint.Port);
    }

    [Theory]
    [InlineData("localhost")]
    [InlineData(DualStackName)]
    public async Task A_nodes_replication_and_admin_listeners_bind_a_names_IPv4_address(string host)
    {
        using var dir = new TempDirectory();
        var node = await ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Host = host, Port = 0 }, Standby(dir) with { Host = host });
        await using (node)
        {
            Assert.Equal(IPAddress.Loopback, node.ReplicationEndPoint.Address);
            await AssertAcceptsAsync(IPAddress.Loopback, node.ReplicationEndPoint.Port);
            // The admin endpoint is the server assembly's AdminHttpServer, whose resolver this assembly cannot stand in
            // for: its own tests bind it by the made-up name; here it binds localhost through the node.
            await using var admin = await node.StartAdminAsync("localhost", 0);
            Assert.Equal(IPAddress.Loopback, admin.EndPoint.Address);
            await AssertAcceptsAsync(IPAddress.Loopback, admin.EndPoint.Port);
        }
    }

    /// <summary>The node's ServerOptions were not checked until it became primary and started its server: a standby ran with them.</summary>
    [Theory]
    [InlineData("127.1")]
    [InlineData("not a host")]
    public async Task A_node_refuses_a_server_host_that_is_not_an_address_at_start(string host)
    {
        using var dir = new TempDirectory();
        var refused = await Assert.ThrowsAsync<BrokerException>(() => ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Host = host, Port = 0 }, Standby(dir)));
        Assert.Equal(BrokerErrorCode.InvalidArgument, refused.Code);
        Assert.Contains($"Host '{host}' is not an address to bind", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_node_refuses_a_server_host_name_that_does_not_resolve_at_start()
    {
        using var dir = new TempDirectory();
        var refused = await Assert.ThrowsAnyAsync<SocketException>(() => ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Host = Unresolvable, Port = 0 }, Standby(dir)));
        Assert.Contains($"ServerOptions.Host '{Unresolvable}': the host name does not resolve", refused.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// The witness's name moves from 127.0.0.1 to 127.0.0.2 (same port) while the client's connection is up: that
    /// connection goes on answering from the old address; once the old witness is gone, the failed call reconnects to
    /// the new address, resolving the name afresh rather than reusing the address it connected to.
    /// </summary>
    [Fact]
    public async Task A_witness_client_resolves_the_name_again_when_it_reconnects()
    {
        var name = $"witness-{Guid.NewGuid():N}.test";
        var moved = IPAddress.Parse("127.0.0.2");
        using var dirA = new TempDirectory();
        using var dirB = new TempDirectory();
        var first = await WitnessServer.StartAsync(WitnessOptions.Default with { Port = 0, DataDirectory = dirA.Path });
        await using var second = await WitnessServer.StartAsync(WitnessOptions.Default with { Host = moved.ToString(), Port = first.EndPoint.Port, DataDirectory = dirB.Path });
        TestNames.Set(name, IPAddress.Loopback);
        await using var client = new WitnessClient($"{name}:{first.EndPoint.Port}", WitnessFixture.CallTimeout);
        try
        {
            Assert.True((await client.AcquireAsync("a", 0, TimeSpan.FromSeconds(30))).IsGranted);
            await using (var direct = new WitnessClient($"{moved}:{first.EndPoint.Port}", WitnessFixture.CallTimeout))
            {
                Assert.True((await direct.AcquireAsync("b", 0, TimeSpan.FromSeconds(30))).IsGranted);
            }

            var resolvedBefore = TestNames.Resolutions(name);

            TestNames.Set(name, moved);
            Assert.Equal("a", (await client.StatusAsync()).Holder); // the kept connection: still the first witness
            Assert.Equal(resolvedBefore, TestNames.Resolutions(name));
        }
        finally
        {
            await first.DisposeAsync();
        }

        var status = await client.StatusAsync();
        Assert.True(status.Kind == LeaseResultKind.Status, $"the call after the first witness stopped reconnects to the name's new address: {status}");
        Assert.Equal("b", status.Holder);
        Assert.True(TestNames.Resolutions(name) > 1, "the reconnect resolved the name again");
    }

    private static ReplicationOptions Standby(TempDirectory dir) => new()
    {
        NodeId = "b",
        DataDirectory = dir.Combine("b"),
        Port = 0,
        Peer = $"127.0.0.1:{FreePort.Next()}",
        InitialRole = NodeRole.Standby,
        PeerWait = TimeSpan.Zero,
    };

    private static async Task AssertAcceptsAsync(IPAddress address, int port)
    {
        using var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        using var timeout = new CancellationTokenSource(Eventually.DefaultTimeout);
        await socket.ConnectAsync(new IPEndPoint(address, port), timeout.Token);
        Assert.True(socket.Connected);
    }
}

/// <summary>
/// Host names resolved in this test assembly as a test says (<c>HostAddress.Resolver</c>, which the listeners and
/// the witness and peer clients resolve through), counted; every other name goes to the system resolver, so tests
/// running alongside are not affected.
/// </summary>
internal static class TestNames
{
    private static readonly ConcurrentDictionary<string, IPAddress[]> s_names = new(StringComparer.OrdinalIgnoreCase);
    private static readonly ConcurrentDictionary<string, int> s_resolutions = new(StringComparer.OrdinalIgnoreCase);

    static TestNames()
    {
        var system = HostAddress.Resolver;
        HostAddress.Resolver = (name, ct) =>
        {
            if (!s_names.TryGetValue(name, out var found))
            {
                return system(name, ct);
            }

            s_resolutions.AddOrUpdate(name, 1, (_, n) => n + 1);
            return Task.FromResult(found);
        };
    }

    public static void Set(string name, params IPAddress[] addresses) => s_names[name] = addresses;

    public static int Resolutions(string name) => s_resolutions.GetValueOrDefault(name);
}
