using System.Security.Cryptography.X509Certificates;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// The client commands reach a <c>serve --tls-cert</c> server: <c>--tls</c> (system trust), <c>--tls-ca</c> (trust this
/// certificate file, as <c>curl --cacert</c>), <c>--tls-server-name</c>. Before, they had no TLS at all: every command
/// against a TLS server failed with "closed the connection".
/// </summary>
public sealed class CliTlsTests
{
    [Fact]
    public async Task Client_commands_talk_to_a_tls_server_only_with_a_certificate_they_trust()
    {
        using var dir = new TempDirectory("fastbroker-cli-tls");
        var (pfx, pem) = (dir.Combine("server.pfx"), dir.Combine("server.pem"));
        WriteSelfSigned("localhost", "pw", pfx, pem);
        var port = FreePort.Next();
        using var serve = await Cli.ServeAsync(dir.Combine("data"), port, "--tls-cert", pfx, "--tls-password", "pw");
        var server = Cli.Address(port);

        var published = await CliOutcome.RunAsync(["pub", "secure", "over-tls", "--server", server, "--tls-ca", pem]);
        Assert.True(published.ExitCode == 0 && published.Output.Trim() == "secure@0", published.Describe(["pub"]) + $", stdout: {published.Output}");
        var read = await CliOutcome.RunAsync(["sub", "secure", "--from", "earliest", "--count", "1", "--server", $"localhost:{port}", "--tls-ca", pem]);
        Assert.True(read.ExitCode == 0 && read.Output.Contains("over-tls", StringComparison.Ordinal), read.Describe(["sub"]) + $", stdout: {read.Output}");

        (string[] Args, int Exit, string Reason)[] refused =
        [
            (["pub", "secure", "x", "--server", server], 1, "this server requires TLS"), // plain TCP to a TLS server: told why
            (["pub", "secure", "x", "--server", server, "--tls"], 1, "UntrustedRoot"), // a self-signed certificate the system does not trust
            (["pub", "secure", "x", "--server", server, "--tls-ca", pem, "--tls-server-name", "other"], 1, "rejected"), // not the name asked for
            (["topics", "--server", server, "--tls-ca", dir.Combine("missing.pem")], 64, "--tls-ca"),
        ];
        var failures = new List<string>();
        foreach (var (args, exit, reason) in refused)
        {
            var outcome = await CliOutcome.RunAsync(args);
            if (outcome.ExitCode != exit || outcome.HasStackTrace || !outcome.Errors.Contains(reason, StringComparison.Ordinal))
            {
                failures.Add($"expected exit {exit} and \"{reason}\": {outcome.Describe(args)}");
            }
        }

        // TLS to a plain server: the handshake meets a FastBroker frame, and the client says what that means.
        var plainPort = FreePort.Next();
        using (var plain = await Cli.ServeAsync(dir.Combine("plain"), plainPort))
        {
            string[] args = ["pub", "secure", "x", "--server", Cli.Address(plainPort), "--tls-ca", pem];
            var outcome = await CliOutcome.RunAsync(args);
            if (outcome.ExitCode != 1 || outcome.HasStackTrace || !outcome.Errors.Contains("does not speak TLS", StringComparison.Ordinal))
            {
                failures.Add($"expected exit 1 and \"does not speak TLS\": {outcome.Describe(args)}");
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n---\n", failures));
        var topics = await CliOutcome.RunAsync(["topics", "--json", "--server", server, "--tls-ca", pem]);
        Assert.Contains("\"head\":1", topics.Output.Replace(" ", "", StringComparison.Ordinal), StringComparison.Ordinal); // the refused publishes stored nothing
    }

    private static void WriteSelfSigned(string host, string password, string pfxPath, string pemPath)
    {
        using var certificate = SelfSignedCertificate.Create(host);
        File.WriteAllBytes(pfxPath, certificate.Export(X509ContentType.Pkcs12, password));
        File.WriteAllText(pemPath, certificate.ExportCertificatePem());
    }
}
