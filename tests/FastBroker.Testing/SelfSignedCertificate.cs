using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace FastBroker.Testing;

/// <summary>A throwaway TLS server certificate for tests: self-signed, for a host name and 127.0.0.1, valid today.</summary>
public static class SelfSignedCertificate
{
    /// <summary>A self-signed RSA certificate for <paramref name="host"/> (and 127.0.0.1), with its private key.</summary>
    public static X509Certificate2 Create(string host)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={host}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName(host);
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
    }
}
