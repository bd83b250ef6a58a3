using System.Security.Cryptography.X509Certificates;
using FastBroker.Client;
using FastBroker.Protocol;
using FastBroker.Testing;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

public class TlsTests
{
    [Fact]
    public async Task A_tls_client_with_a_validation_callback_talks_to_a_tls_server_and_a_plain_one_cannot()
    {
        using var dir = new TempDirectory("fastbroker-client-tls");
        var pfx = dir.Combine("server.pfx");
        await File.WriteAllBytesAsync(pfx, SelfSigned("localhost", "pw"));
        await using var f = await ServerFixture.StartAsync(o => o with { TlsCertificatePath = pfx, TlsCertificatePassword = "pw" });

        string? subject = null;
        var client = await f.ConnectAsync(o => o with
        {
            UseTls = true,
            TlsTargetHost = "localhost",
            CertificateValidation = (_, certificate, _, _) =>
            {
                subject = certificate?.Subject;
                return true; // a test certificate: trust it explicitly
            },
        });
        Assert.Equal("CN=localhost", subject);
        Assert.Equal(0, await client.PublishAsync("secure", Bytes("over tls")));
        await using var sub = await client.CreateSubscriptionAsync("secure", SubscribeOptions.Default with { Start = SubscribeStart.Earliest });
        Assert.Equal("over tls", (await TakeAsync(sub, 1))[0].GetPayloadString());

        // Plain to a TLS server and TLS to a plain one: each is told what is wrong, at once (not retried to the timeout).
        var plain = await Assert.ThrowsAsync<BrokerClientException>(async () => await f.ConnectAsync(o => o with { ConnectTimeout = TimeSpan.FromMinutes(5) }));
        Assert.Equal(ErrorCode.UnsupportedVersion, plain.ErrorCode);
        Assert.Contains("this server requires TLS", plain.Message, StringComparison.Ordinal);

        await using var clear = await ServerFixture.StartAsync();
        var tls = await Assert.ThrowsAsync<BrokerClientException>(async () => await clear.ConnectAsync(o => o with
        {
            UseTls = true,
            TlsTargetHost = "localhost",
            CertificateValidation = (_, _, _, _) => true,
            ConnectTimeout = TimeSpan.FromMinutes(5),
        }));
        Assert.Equal(ErrorCode.UnsupportedVersion, tls.ErrorCode);
        Assert.Contains("does not speak TLS", tls.Message, StringComparison.Ordinal);
    }

    private static byte[] SelfSigned(string host, string password)
    {
        using var certificate = SelfSignedCertificate.Create(host);
        return certificate.Export(X509ContentType.Pkcs12, password);
    }
}
