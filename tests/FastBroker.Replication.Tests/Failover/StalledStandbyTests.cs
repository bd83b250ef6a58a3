using System.Text.Json;
using FastBroker.Client;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// The journaler ships a standby-mode batch to the standby on its own thread (no wake-up of the replicator's sender
/// thread), so it must never block on the link: here the standby stops reading (a stalled proxy, connections kept open)
/// while megabytes of standby-received publishes fill the primary's socket buffers. Local-mode publishes of another
/// topic must still be confirmed meanwhile; once the standby reads again, every held publish is confirmed and the
/// stream arrived whole and in order (the standby checks each record's length, CRC and offset, so a torn or reordered
/// stream would have broken the link).
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class StalledStandbyTests(ITestOutputHelper output)
{
    private const string Held = "stalled.held";
    private const string Local = "stalled.local";
    private const int HeldCount = 10_000;
    private static readonly PublishOptions s_received = PublishOptions.Default with { Durability = FastBroker.Protocol.Durability.StandbyReceived };
    private static readonly PublishOptions s_local = PublishOptions.Default with { Durability = FastBroker.Protocol.Durability.Written };

    [Fact]
    public async Task Journaler_never_blocks_on_a_standby_that_stopped_reading()
    {
        await using var pair = new PairHarness();
        try
        {
            int portA = FreePort.Next(), portB = FreePort.Next();
            var toA = pair.AddProxy(portA);

            // Heartbeat and ack timeouts far beyond the test's waits: the link must stay up through the stall, so that
            // nothing but the journaler itself can let the local publishes through.
            string[] options = ["--acks", "local", "--heartbeat-timeout-ms", "120000", "--ack-timeout-ms", "120000"];
            var a = pair.AddNode("a", portA, $"127.0.0.1:{portB}", [.. options, "--role", "primary"]);
            var b = pair.AddNode("b", portB, toA.Endpoint, [.. options, "--role", "standby"]);
            await a.StartAsync();
            await b.StartAsync();
            await a.WaitForAsync(s => s.StandbyConfirming, "a is primary and b, through the proxy, confirms its publishes");

            await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with
            {
                Endpoints = [a.ClientEndpoint],
                Reconnect = false,
                MaxInFlight = 16_384,
            });

            // Once the sender has announced a topic to the standby, its standby-received batches are shipped by the
            // journaler itself.
            await client.PublishAsync(Held, "first"u8, s_received);
            await client.PublishAsync(Local, "first"u8, s_local);
            await a.WaitForAsync(s => s.StandbyCaughtUp(Held) && s.StandbyCaughtUp(Local), "b has both topics");
            for (var i = 0; i < 5; i++)
            {
                await client.PublishAsync(Held, "announced"u8, s_received);
            }

            var before = await a.WaitForAsync(s => s.StandbyCaughtUp(Held), "b has the announced ones");
            Assert.True(JournalerShips(before) > 0, $"the journaler shipped nothing itself: {before.Json}");

            toA.Stall();
            var payload = new byte[1 << 10];
            var held = new List<Task<long>>(HeldCount);
            for (var i = 0; i < HeldCount; i++)
            {
                BitConverter.TryWriteBytes(payload, i);
                held.Add(client.PublishAsync(Held, payload, s_received).AsTask()); // 10 MiB: more than the socket buffers hold
            }

            // The journaler is not stuck in a send: local publishes keep being confirmed, one after the other.
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            for (var i = 0; i < 20; i++)
            {
                await client.PublishAsync(Local, "during the stall"u8, s_local, deadline.Token);
            }

            Assert.DoesNotContain(held, t => t.IsCompleted); // the standby has received none of them
            var stalled = await a.WaitForAsync(s => s.IsPrimary, "a answers its status during the stall");
            Assert.True(stalled.Standby is { Attached: true }, $"the link went down during the stall: {stalled.Json}");
            output.WriteLine($"during the stall: journalerShips {Link(stalled, "journalerShips")}, journalerDeferred {Link(stalled, "journalerDeferred")}");

            toA.Resume();
            var offsets = await Task.WhenAll(held).WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal(Enumerable.Range(6, HeldCount).Select(i => (long)i), offsets);
            await a.WaitForAsync(s => s.StandbyCaughtUp(Held) && s.StandbyCaughtUp(Local), "b has everything");
            Assert.DoesNotContain("disconnected", pair.Logs, StringComparison.Ordinal); // the primary's log: the link never broke
            var replica = await b.WaitForAsync(s => s.ReplicaOf(Held) is { Next: HeldCount + 6 }, "b's copy of the held topic is complete");
            Assert.True(replica.Replica is { Connected: true }, replica.Json);
        }
        catch (Exception)
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }

    private static long JournalerShips(NodeStatus status) => Link(status, "journalerShips");

    private static long Link(NodeStatus status, string counter)
    {
        using var doc = JsonDocument.Parse(status.Json);
        return doc.RootElement.GetProperty("standby").GetProperty(counter).GetInt64();
    }
}
