using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using FastBroker.Net;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ServerTests;

/// <summary>
/// The broker's listener and the admin endpoint bind a host by one rule (<see cref="HostAddress.ListenRule"/>): an IP
/// address as given, a host name's first IPv4 address (else its first address), so <c>localhost</c> binds 127.0.0.1
/// whatever the resolver lists first; and <see cref="ServerOptions.Validate"/> reads <see cref="ServerOptions.Host"/>
/// as <c>serve --host</c> does.
/// </summary>
public class ListenAddressTests
{
    /// <summary>Resolves to ::1 first, as <c>localhost</c> does where /etc/hosts lists both (glibc sorts ::1 first).</summary>
    private const string DualStackName = "dual-stack-first-v6.test";

    private const string Unresolvable = "no-such-host.invalid"; // RFC 6761: never resolves

    static ListenAddressTests() => TestNames.Add(DualStackName, IPAddress.IPv6Loopback, IPAddress.Loopback);

    [Theory]
    [InlineData("localhost")]
    [InlineData(DualStackName)]
    public async Task The_broker_listener_binds_a_names_IPv4_address(string host)
    {
        await using var f = await ServerFixture.StartAsync(o => o with { Host = host });
        Assert.Equal(IPAddress.Loopback, f.Server.EndPoint.Address);
        await AssertAcceptsAsync(f.Server.EndPoint.Port);
    }

    [Theory]
    [InlineData("localhost")]
    [InlineData(DualStackName)]
    public async Task The_admin_listener_binds_a_names_IPv4_address_as_the_broker_listener_does(string host)
    {
        await using var f = await ServerFixture.StartAsync(o => o with { Host = host });
        await using var admin = await AdminHttpServer.StartAsync(f.Broker, f.Server, host, 0);
        Assert.Equal(f.Server.EndPoint.Address, admin.EndPoint.Address);
        Assert.Equal(IPAddress.Loopback, admin.EndPoint.Address);
        await AssertAcceptsAsync(admin.EndPoint.Port);
    }

    /// <summary>A host the CLI's --host refuses is refused by Validate, by name and with the reason; it bound something (127.1: 127.0.0.1) or failed at start.</summary>
    [Theory]
    [InlineData("127.1", "four numbers")]
    [InlineData("0", "four numbers")]
    [InlineData("010.0.0.1", "four numbers")]
    [InlineData("10.0.0.256", "four numbers")]
    [InlineData("not a host", "host name")]
    [InlineData("-broker", "host name")]
    [InlineData("0x7f000001", "reads as an IP address")]
    [InlineData("::1:x", "IPv6")]
    [InlineData("[127.0.0.1]", "IPv6")]
    public void A_host_that_is_not_an_address_is_refused_by_Validate(string host, string reason)
    {
        var refused = Assert.Throws<BrokerException>((ServerOptions.Default with { Host = host }).Validate);
        Assert.Equal(BrokerErrorCode.InvalidArgument, refused.Code);
        Assert.Contains($"Host '{host}' is not an address to bind: ", refused.Message, StringComparison.Ordinal);
        Assert.Contains(reason, refused.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData(" ")]
    public void An_empty_host_is_refused_by_Validate(string host)
    {
        var refused = Assert.Throws<BrokerException>((ServerOptions.Default with { Host = host }).Validate);
        Assert.Contains("Host is required", refused.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("0.0.0.0")]
    [InlineData("::")]
    [InlineData("[::1]")]
    [InlineData("localhost")]
    [InlineData("broker-1.example.com.")]
    public void An_address_or_a_host_name_passes_Validate(string host) => (ServerOptions.Default with { Host = host }).Validate();

    /// <summary>The admin endpoint's host reads as the server's: a shortened form is refused by name, not bound.</summary>
    [Fact]
    public async Task The_admin_listener_refuses_a_host_that_is_not_an_address()
    {
        await using var f = await ServerFixture.StartAsync();
        var refused = await Assert.ThrowsAsync<ArgumentException>(() => AdminHttpServer.StartAsync(f.Broker, f.Server, "127.1", 0));
        Assert.Equal("host", refused.ParamName);
        Assert.Contains("four numbers", refused.Message, StringComparison.Ordinal);
    }

    /// <summary>A name that does not resolve fails the start with an error naming Host and the name, not the resolver's bare "Name or service not known".</summary>
    [Fact]
    public async Task A_host_name_that_does_not_resolve_fails_the_start_naming_Host()
    {
        using var dir = new TempDirectory();
        await using var broker = await Broker.OpenAsync(BrokerOptions.Default with { DataDirectory = dir.Path });
        var refused = await Assert.ThrowsAnyAsync<SocketException>(() => BrokerServer.StartAsync(broker, ServerOptions.Default with { Host = Unresolvable, Port = 0 }));
        Assert.Contains($"Host '{Unresolvable}': the host name does not resolve", refused.Message, StringComparison.Ordinal);
        var admin = await Assert.ThrowsAnyAsync<SocketException>(() => AdminHttpServer.StartAsync(broker, null, Unresolvable, 0));
        Assert.Contains($"host '{Unresolvable}': the host name does not resolve", admin.Message, StringComparison.Ordinal);
    }

    private static async Task AssertAcceptsAsync(int port)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        using var timeout = new CancellationTokenSource(Eventually.DefaultTimeout);
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), timeout.Token);
        Assert.True(socket.Connected);
    }
}

/// <summary>
/// Host names the listeners resolve in this test assembly as a test says (<see cref="HostAddress.Resolver"/>); every other
/// name goes to the system resolver, so tests running alongside are not affected.
/// </summary>
internal static class TestNames
{
    private static readonly ConcurrentDictionary<string, IPAddress[]> s_names = new(StringComparer.OrdinalIgnoreCase);

    static TestNames()
    {
        var system = HostAddress.Resolver;
        HostAddress.Resolver = (name, ct) => s_names.TryGetValue(name, out var found) ? Task.FromResult(found) : system(name, ct);
    }

    public static void Add(string name, params IPAddress[] addresses) => s_names[name] = addresses;
}
