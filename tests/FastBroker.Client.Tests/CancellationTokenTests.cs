using FastBroker.Client;
using FastBroker.Testing;
using Xunit.Abstractions;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

/// <summary>
/// A service passes one long-lived token (its shutdown token) to every call. Each call that can wait registers on it;
/// a registration that is not disposed when the call ends stays in the token's source (a callback node, about 80
/// bytes, with the call's state reachable from it) until the source is disposed: memory that grows with every call.
/// Measured as what survives a full collection, with the server in a child process so only the client counts.
/// </summary>
[Collection(nameof(SerialCollection))]
public class CancellationTokenTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_long_lived_token_passed_to_every_publish_read_and_request_keeps_no_registration_per_call()
    {
        using var dir = new TempDirectory("fastbroker-client-token");
        using var host = await HostProcess.StartAsync(dir.Path);
        await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [host.Endpoint], ConnectTimeout = TimeSpan.FromSeconds(30) });
        using var lifetime = new CancellationTokenSource(); // never canceled, disposed only at the end
        var token = lifetime.Token;
        await using var reads = await client.CreateSubscriptionAsync("tok.read", SubscribeOptions.Default with { Start = SubscribeStart.Earliest }, token);
        var responder = Task.Run(async () =>
        {
            await foreach (var request in client.SubscribeAsync("tok.svc", cancellationToken: token))
            {
                await client.ReplyAsync(request, Bytes("ok"), cancellationToken: token);
            }
        });

        await RunAsync(client, reads, publishes: 10_000, requests: 1_000, token); // warm-up: pools, JIT tiers, capacities

        // A leak grows with every window; a window's one-off costs (a pool thread started, a pool's array kept: a few
        // hundred KB at most) do not recur in all of them, so the least growth of three windows is taken.
        const int Publishes = 100_000, Requests = 10_000;
        const int Calls = Publishes * 2 + Requests; // every publish is read back with ReadAsync
        var retained = long.MaxValue;
        for (var round = 0; round < 3; round++)
        {
            var before = GC.GetTotalMemory(forceFullCollection: true);
            await RunAsync(client, reads, Publishes, Requests, token);
            var growth = GC.GetTotalMemory(forceFullCollection: true) - before;
            output.WriteLine($"retained {growth:N0} bytes over {Calls:N0} calls ({growth / (double)Calls:0.00} bytes per call; window {round + 1})");
            retained = Math.Min(retained, growth);
        }

        // A registration kept per call would be ~90 bytes × 210,000 calls (19 MB); one kept per request alone 900 KB.
        Assert.True(retained < 256 * 1024, $"{retained:N0} bytes retained after {Calls:N0} calls with one long-lived token");
        Assert.False(responder.IsCompleted);
    }

    private static async Task RunAsync(BrokerClient client, ClientSubscription reads, int publishes, int requests, CancellationToken token)
    {
        const int Window = 512;
        var window = new ValueTask<long>[Window];
        for (var i = 0; i < publishes; i++)
        {
            var slot = i % Window;
            if (i >= Window)
            {
                await window[slot];
            }

            window[slot] = client.PublishAsync("tok.read", Bytes("m"), token);
        }

        for (var i = Math.Max(0, publishes - Window); i < publishes; i++)
        {
            await window[i % Window];
        }

        await client.FlushAsync(token);
        for (var i = 0; i < publishes; i++)
        {
            await reads.ReadAsync(token).AsTask().WaitAsync(Deadline);
        }

        for (var i = 0; i < requests; i++)
        {
            var reply = await client.RequestAsync("tok.svc", Bytes("?"), Deadline, cancellationToken: token);
            Assert.Equal("ok", reply.GetPayloadString());
        }
    }
}
