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

        // The smallest object is 24 bytes, so one per message would be 24 bytes per message at least. A window's
        // one-off costs (a pool thread started, a tier-1 recompilation: about 200 KB) are ~2 bytes per message over
        // 100,000, so the least of three windows is taken.
        const int N = 100_000;
        var perMessage = double.MaxValue;
        for (var round = 0; round < 3; round++)
        {
            var before = GC.GetTotalAllocatedBytes(precise: true);
            await PublishAsync(client, payload, N);
            var bytes = (GC.GetTotalAllocatedBytes(precise: true) - before) / (double)N;
            output.WriteLine($"{bytes:0.00} bytes allocated per published message (window {round + 1})");
            perMessage = Math.Min(perMessage, bytes);
        }

        // Budget: amortised pipe segments and socket bookkeeping, far below one object per message.
        Assert.True(perMessage < 8, $"{perMessage:0.00} bytes per message");
    }

    [Fact]
    public async Task Steady_state_consumption_through_a_handler_allocates_almost_nothing_per_message()
    {
        using var dir = new TempDirectory("fastbroker-client-alloc-handler");
        using var host = await HostProcess.StartAsync(dir.Path);
        await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [host.Endpoint], ConnectTimeout = TimeSpan.FromSeconds(30) });
        const int WarmUp = 20_000; // pipe segments, JIT tiers, the topic's position, the scratch-free fast path
        const int N = 200_000;
        await PublishAsync(client, new byte[100], WarmUp + N, "alloc.handler"); // all published first: only consumption is measured

        // The handler itself reads the allocation counter at the two marks, on the reader loop, so the window holds
        // exactly N deliveries and nothing the test thread does.
        var probe = new AllocationProbe(WarmUp, WarmUp + N);
        await using var consumer = await client.ConsumeAsync("alloc.handler", new ProbeHandler(probe), SubscribeOptions.Default with { Start = SubscribeStart.Earliest });
        await probe.Done.Task.WaitAsync(TimeSpan.FromSeconds(120));
        var perMessage = (probe.After - probe.Before) / (double)N;
        output.WriteLine($"{perMessage:0.00} bytes allocated per consumed message");

        // Budget: one CREDIT control op per 500 messages and amortised socket reads; no object per message.
        Assert.True(perMessage < 4, $"{perMessage:0.00} bytes per message");
    }

    private static async Task PublishAsync(BrokerClient client, byte[] payload, int count, string topic = "alloc")
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

            window[slot] = client.PublishAsync(topic, payload);
        }

        for (var i = Math.Max(0, count - Window); i < count; i++)
        {
            await window[i % Window];
        }
    }

    private sealed class AllocationProbe(int first, int last)
    {
        public int Seen;
        public long Before;
        public long After;

        public int First => first;

        public int Last => last;

        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private readonly struct ProbeHandler(AllocationProbe probe) : IClientMessageHandler
    {
        public void OnMessage(scoped in ClientMessageView message)
        {
            var seen = ++probe.Seen;
            if (seen == probe.First)
            {
                probe.Before = GC.GetTotalAllocatedBytes(precise: true);
            }
            else if (seen == probe.Last)
            {
                probe.After = GC.GetTotalAllocatedBytes(precise: true);
                probe.Done.TrySetResult();
            }
        }
    }
}
