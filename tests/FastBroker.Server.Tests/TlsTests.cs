using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using FastBroker.Protocol;
using FastBroker.Testing;

namespace FastBroker.ServerTests;

public class TlsTests
{
    [Fact]
    public async Task Over_TLS_the_handshake_publish_and_delivery_work_and_plain_clients_are_dropped()
    {
        using var dir = new TempDirectory("fastbroker-tls");
        var pfx = dir.Combine("server.pfx");
        WriteSelfSignedPfx(pfx, "pw");
        await using var f = await ServerFixture.StartAsync(o => o with { TlsCertificatePath = pfx, TlsCertificatePassword = "pw" });

        await using var c = await RawConnection.OpenAsync(f.EndPoint, tls: true);
        Assert.Equal(1, c.Welcome!.Version);
        await c.SubscribeAsync(1, 1, "secure", 10, Protocol.StartKind.Latest);
        Assert.Equal(FrameType.Ok, (await c.ReadAsync()).Type);
        await c.PublishAsync(2, "secure", "over tls");
        var frames = new List<ServerFrame>();
        var d = await c.ReadDeliveriesAsync(1, frames);
        Assert.Equal("over tls", d[0].Text);
        if (!frames.Any(x => x.Type == FrameType.Confirm))
        {
            Assert.Equal(ErrorCode.None, (await c.ReadConfirmsAsync([2]))[2].Status);
        }

        // A plain client is told it needs TLS (it saw only a close before), in a plain ERROR that closes the connection.
        await using var plain = await RawConnection.ConnectAsync(f.EndPoint);
        await plain.SendAsync(w => FrameWriter.WriteHello(w, 1, "t"u8, "1"u8, ProtocolFeatures.None));
        var told = Assert.Single(await plain.ReadUntilClosedAsync());
        Assert.Equal((FrameType.Error, ErrorCode.UnsupportedVersion), (told.Type, told.ErrorCode));
        Assert.Contains("this server requires TLS", told.ErrorReason, StringComparison.Ordinal);
        Assert.True(told.CloseConnection, told.ToString());
    }

    [Fact]
    public async Task A_TLS_handshake_timeout_longer_than_a_timer_can_arm_is_refused_at_start()
    {
        // CancelAfter takes at most about 49 days: a longer timeout passed validation, then failed every TLS session
        // (before its handshake) with an ArgumentOutOfRangeException.
        using var dir = new TempDirectory("fastbroker-tls");
        var pfx = dir.Combine("server.pfx");
        WriteSelfSignedPfx(pfx, "pw");
        var e = await Assert.ThrowsAsync<BrokerException>(async () =>
        {
            await using var f = await ServerFixture.StartAsync(o => o with { TlsCertificatePath = pfx, TlsCertificatePassword = "pw", TlsHandshakeTimeout = TimeSpan.FromDays(60) });
            await using var c = await RawConnection.OpenAsync(f.EndPoint, tls: true);
        });
        Assert.Equal(BrokerErrorCode.InvalidArgument, e.Code);
    }

    [Fact]
    public async Task Failed_TLS_handshakes_are_logged_through_the_limit_per_text()
    {
        // A client that is not TLS (or a scanner) reconnecting in a loop wrote one log line per connection: the same
        // flood the limit per text stops for protocol-error closes.
        using var dir = new TempDirectory("fastbroker-tls");
        var pfx = dir.Combine("server.pfx");
        WriteSelfSignedPfx(pfx, "pw");
        var clock = new ManualClock(); // never moved: the interval never ends
        await using var f = await ServerFixture.StartAsync(o => o with { TlsCertificatePath = pfx, TlsCertificatePassword = "pw", LogClock = clock });
        const int Plain = 5;
        for (var i = 0; i < Plain; i++)
        {
            await using var plain = await RawConnection.ConnectAsync(f.EndPoint);
            await plain.SendAsync(w => FrameWriter.WriteHello(w, 1, "t"u8, "1"u8, ProtocolFeatures.None));
            Assert.Equal(ErrorCode.UnsupportedVersion, Assert.Single(await plain.ReadUntilClosedAsync()).ErrorCode);
        }

        // A TLS record header with a broken body: the handshake itself fails.
        for (var i = 0; i < Plain; i++)
        {
            using var broken = new Socket(SocketType.Stream, ProtocolType.Tcp);
            await broken.ConnectAsync(f.EndPoint);
            await broken.SendAsync(new byte[] { 0x16, 0x03, 0x01, 0x00, 0x04, 0xFF, 0xFF, 0xFF, 0xFF });
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            var scratch = new byte[256];
            while (await broken.ReceiveAsync(scratch, deadline.Token) > 0)
            {
                // the server's TLS alert, then its close
            }
        }

        await Eventually.TrueAsync(() => f.Server.ConnectionsAccepted == 2 * Plain && f.Server.ConnectionCount == 0, "every connection is closed");
        var refused = f.Log.Where(l => l.Contains("a plain-TCP client on a TLS server", StringComparison.Ordinal)).ToList();
        Assert.True(refused.Count == 1, $"{Plain} plain clients alike, one line expected: [{string.Join(" | ", refused)}]");
        var lines = f.Log.Where(l => l.Contains("TLS handshake failed", StringComparison.Ordinal)).ToList();
        Assert.True(lines.Count == 1, $"{Plain} failed handshakes alike, one line expected: [{string.Join(" | ", lines)}]");
    }

    private static void WriteSelfSignedPfx(string path, string password)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("localhost");
        san.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false));
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        File.WriteAllBytes(path, cert.Export(X509ContentType.Pfx, password));
    }
}
