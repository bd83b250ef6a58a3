using System.CommandLine;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using FastBroker.Client;

namespace FastBroker.Cli.Commands;

/// <summary>
/// TLS for the client commands (<c>pub</c>, <c>sub</c>, <c>topics</c>, <c>groups</c>, <c>stats</c>): before, they had no
/// way to reach a <c>serve --tls-cert</c> server at all.
/// </summary>
internal static partial class ClientCommands
{
    private static readonly Option<bool> s_tls = new("--tls") { Description = "Connect with TLS, the server's certificate checked against the system's trusted roots (or --tls-ca)." };
    private static readonly Option<string?> s_tlsCa = new("--tls-ca") { Description = "Trust this certificate file (PEM, one or more, or DER) as the root for the server's certificate, e.g. a self-signed server certificate; implies --tls." };
    private static readonly Option<string?> s_tlsServerName = new("--tls-server-name") { Description = "The name the server's certificate must carry (default: the host of --server); implies --tls." };

    private static void AddTls(Command command)
    {
        command.Options.Add(s_tls);
        command.Options.Add(s_tlsCa);
        command.Options.Add(s_tlsServerName);
    }

    /// <summary>
    /// The client's TLS settings from the flags. An unreadable <c>--tls-ca</c> file throws <see cref="ArgumentException"/>
    /// with the reason: the command's usage error (exit 64).
    /// </summary>
    private static BrokerClientOptions WithTls(BrokerClientOptions options, ParseResult parse)
    {
        var ca = parse.GetValue(s_tlsCa);
        var serverName = parse.GetValue(s_tlsServerName);
        if (!parse.GetValue(s_tls) && ca is null && serverName is null)
        {
            return options;
        }

        return options with
        {
            UseTls = true,
            TlsTargetHost = serverName,
            CertificateValidation = ca is null ? null : TrustedRoots(LoadCertificates(ca)),
        };
    }

    /// <summary>Every certificate of a PEM file, or the one of a DER file.</summary>
    private static X509Certificate2Collection LoadCertificates(string path)
    {
        var certificates = new X509Certificate2Collection();
        try
        {
            if (File.ReadAllText(path).Contains("-----BEGIN CERTIFICATE-----", StringComparison.Ordinal))
            {
                certificates.ImportFromPemFile(path);
            }
            else
            {
                certificates.Add(X509CertificateLoader.LoadCertificateFromFile(path));
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException)
        {
            throw new ArgumentException($"--tls-ca '{path}': not a certificate file this command can read ({e.Message})");
        }

        if (certificates.Count == 0)
        {
            throw new ArgumentException($"--tls-ca '{path}': holds no certificate");
        }

        return certificates;
    }

    /// <summary>
    /// Accepts a server certificate that carries the expected name and chains to one of <paramref name="roots"/> (only
    /// those: the system's roots are not consulted), as <c>curl --cacert</c> does.
    /// </summary>
    private static RemoteCertificateValidationCallback TrustedRoots(X509Certificate2Collection roots) => (_, certificate, _, errors) =>
    {
        if (certificate is null || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != SslPolicyErrors.None)
        {
            return false; // none sent, or its name is not the one asked for
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(roots);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        using var presented = new X509Certificate2(certificate);
        return chain.Build(presented);
    };
}
