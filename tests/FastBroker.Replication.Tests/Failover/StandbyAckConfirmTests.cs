using System.Text.Json;
using FastBroker.Client;
using FastBroker.Protocol;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A standby-received publish is confirmed when the standby's ACK comes back; the replicator's ack reader then sends
/// the CONFIRM to the client itself (a non-blocking send, as the journaler does for local publishes) instead of waking
/// the connection's writer. Checked on real processes through the primary's ServerStats: only standby-received
/// publishes are made, so every CONFIRM sent without the writer was sent by the ack reader.
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class StandbyAckConfirmTests(ITestOutputHelper output)
{
    private const string Topic = "acked";

    [Fact]
    public async Task The_ack_reader_sends_standby_received_confirmations_itself()
    {
        await using var pair = new PairHarness();
        try
        {
            int portA = FreePort.Next(), portB = FreePort.Next();
            string[] options = ["--acks", "standby-received", "--heartbeat-timeout-ms", "120000", "--ack-timeout-ms", "120000"];
            var a = pair.AddNode("a", portA, $"127.0.0.1:{portB}", [.. options, "--role", "primary"]);
            var b = pair.AddNode("b", portB, $"127.0.0.1:{portA}", [.. options, "--role", "standby"]);
            await a.StartAsync();
            await b.StartAsync();
            await a.WaitForAsync(s => s.StandbyConfirming, "a is primary and b confirms its publishes");

            await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [a.ClientEndpoint], Reconnect = false });

            // One at a time: the connection's writer is asleep whenever an ACK releases one.
            for (var i = 0; i < 50; i++)
            {
                Assert.Equal(i, await client.PublishAsync(Topic, "m"u8).AsTask().WaitAsync(TimeSpan.FromSeconds(60)));
            }

            using var stats = JsonDocument.Parse(await client.AdminAsync(AdminQuery.ServerStats));
            var server = stats.RootElement.GetProperty("server");
            var direct = server.GetProperty("journalerConfirms").GetInt64();
            output.WriteLine($"CONFIRM frames sent without the writer: {direct} of 50");
            Assert.True(direct > 0, $"no standby-received CONFIRM was sent by the ack reader: {server}");
            var replica = await b.WaitForAsync(s => s.ReplicaOf(Topic) is { Next: 50 }, "b has all 50");
            Assert.True(replica.Replica is { Connected: true }, replica.Json);
        }
        catch (Exception)
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }
}
