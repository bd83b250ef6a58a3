using FastBroker.Client;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.ClientTests;

/// <summary>
/// The publish path in steady state: pooled completion sources and buffers, no per-message closures. Measured over
/// the whole process with the server in a child process, so only the client's allocations count.
/// </summary>
[Collection(nameof(SerialCollection))]
public class AllocationTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Steady_state_pipelined_publishing_allocates_almost_nothing_per_message()
    {
        using var dir = new TempDirectory("fastbroker-client-alloc");
        using var host = await HostProcess.StartAsync(dir.Path);
        await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [host.Endpoint], ConnectTimeout = TimeSpan.FromSeconds(30) });
        var payload = new byte[100];
        await PublishAsync(client, payload, 20_000); // warm-up: pools, JIT tiers, dictionary capacity

        const int N = 50_000;
        var before = GC.GetTotalAllocatedBytes(precise: true);
        await PublishAsync(client, payload, N);
        var perMessage = (GC.GetTotalAllocatedBytes(precise: true) - before) / (double)N;
        output.WriteLine($"{perMessage:0.0} bytes allocated per published message");

        // Budget: amortised pipe segments and socket bookkeeping, far below one object per message.
        Assert.True(perMessage < 48, $"{perMessage:0.0} bytes per message");
    }

    private static async Task PublishAsync(BrokerClient client, byte[] payload, int count)
    {
        const int Window = 512;
        var window = new ValueTask<long>[Window];
        for (var i = 0; i < count; i++)
        {
            var slot = i % Window;
            if (i >= Window)
            {
                await window[slot];
            }

            window[slot] = client.PublishAsync("alloc", payload);
        }

        for (var i = Math.Max(0, count - Window); i < count; i++)
        {
            await window[i % Window];
        }
    }
}
