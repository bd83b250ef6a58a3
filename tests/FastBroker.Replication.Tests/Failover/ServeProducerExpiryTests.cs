using System.Text.Json;
using FastBroker.Client;
using FastBroker.Protocol;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>fastbroker serve --producer-idle-timeout-s / --producer-expiry-s</c> reach the broker: with a 1 s expiry a client's
/// producer is forgotten once it has written nothing for a second (ServerStats <c>producers</c> back to 0), which the
/// default of a day would not do. Fire-and-forget publishes (no producer id) keep the journaler's batches, and so its
/// sweep, going meanwhile.
/// </summary>
[Collection(nameof(FailoverCollection))]
public class ServeProducerExpiryTests
{
    [Fact]
    public async Task Serve_forgets_producers_after_the_expiry_it_was_given()
    {
        using var dir = new TempDirectory("fastbroker-serve-producers");
        var port = FreePort.Next();
        using var serve = await Cli.ServeAsync(dir.Path, port, "--producer-idle-timeout-s", "1", "--producer-expiry-s", "1");

        await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [$"127.0.0.1:{port}"], Reconnect = false });
        Assert.Equal(0, await client.PublishAsync("p", new byte[8])); // idempotent: the client's producer id
        Assert.Equal(1, await ProducersAsync(client));

        await Eventually.TrueAsync(
            () =>
            {
                client.Publish("p", new byte[8]); // fire-and-forget: producer id 0, counted by nobody
                client.FlushAsync().Wait(TimeSpan.FromSeconds(10));
                return ProducersAsync(client).Result == 0;
            },
            "the producer is forgotten after the 1 s expiry",
            TimeSpan.FromSeconds(30));
    }

    private static async Task<long> ProducersAsync(BrokerClient client)
    {
        using var stats = JsonDocument.Parse(await client.AdminAsync(AdminQuery.ServerStats));
        return stats.RootElement.GetProperty("broker").GetProperty("producers").GetInt64();
    }
}
