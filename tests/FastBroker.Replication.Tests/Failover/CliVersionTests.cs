using System.Globalization;
using System.Text.Json;
using FastBroker.Client;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// One version everywhere: <c>fastbroker --version</c>, the admin port's <c>/health</c> and the server's WELCOME. Before,
/// <c>--version</c> printed the assembly's version (1.0.0+sha) while <c>/health</c> and WELCOME said a constant 0.1.0.
/// </summary>
public sealed class CliVersionTests
{
    [Fact]
    public async Task Version_health_and_welcome_name_the_same_version()
    {
        var printed = Assert.Single(await Cli.RunAsync("--version")).Trim();
        Assert.StartsWith("0.1.0", printed, StringComparison.Ordinal);

        using var dir = new TempDirectory("fastbroker-cli-version");
        var port = FreePort.Next();
        var adminPort = FreePort.Next();
        using var serve = await Cli.StartAsync("fastbroker listening", ["serve", "--data", dir.Combine("data"), "--port", port.ToString(CultureInfo.InvariantCulture), "--admin-port", adminPort.ToString(CultureInfo.InvariantCulture)]);

        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{adminPort.ToString(CultureInfo.InvariantCulture)}/"), Timeout = TimeSpan.FromSeconds(30) };
        using (var health = JsonDocument.Parse(await http.GetStringAsync(new Uri("health", UriKind.Relative))))
        {
            Assert.Equal(printed, health.RootElement.GetProperty("version").GetString());
        }

        await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [Cli.Address(port)], Reconnect = false });
        Assert.Equal(printed, client.ServerVersion);
    }
}
