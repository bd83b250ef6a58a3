using FastBroker.Client;
using FastBroker.Protocol;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// Producer epochs across a real failover (two <c>fastbroker serve</c> processes, kill -9, manual promotion): a client
/// instance replaced by a newer one with the same producer id stays fenced on the promoted standby, which knows the newer
/// epoch from the replicated records, while the newer instance resumes its epoch there and goes on. Every confirmed
/// message of either is on the new primary exactly once.
/// </summary>
[Collection(nameof(PairProcessCollection))]
public sealed class ProducerFencingFailoverTests(ITestOutputHelper output)
{
    private const string Topic = "fenced.orders";
    private const ulong Id = 0x5151_0000_0000_0042;

    [Fact]
    public async Task A_replaced_instance_stays_fenced_on_the_promoted_standby_and_the_new_one_goes_on()
    {
        await using var pair = new PairHarness();
        try
        {
            int portA = FreePort.Next(), portB = FreePort.Next();
            string[] options = ["--acks", "standby-durable", "--degrade-to-local", "--heartbeat-timeout-ms", "2000"]; // b confirms alone once a is gone
            var a = pair.AddNode("a", portA, $"127.0.0.1:{portB}", [.. options, "--role", "primary"]);
            var b = pair.AddNode("b", portB, $"127.0.0.1:{portA}", [.. options, "--role", "standby"]);
            await a.StartAsync();
            await b.StartAsync();
            await a.WaitForAsync(s => s.StandbyConfirming, "a is primary and b confirms its publishes");

            var clientOptions = BrokerClientOptions.Default with
            {
                Endpoints = [a.ClientEndpoint, b.ClientEndpoint],
                ProducerId = Id,
                ReconnectTimeout = TimeSpan.FromSeconds(60),
                ReconnectMaxDelay = TimeSpan.FromMilliseconds(100),
                ConnectTimeout = TimeSpan.FromSeconds(5),
            };
            await using var old = await BrokerClient.ConnectAsync(clientOptions);
            for (var i = 0; i < 20; i++)
            {
                Assert.Equal(i, await old.PublishAsync(Topic, Payload($"old{i}")).AsTask().WaitAsync(TimeSpan.FromSeconds(60)));
            }

            // The new instance reaches b through a proxy that refuses it until the old one has been fenced there: b must
            // know the newer epoch from the records it copied, not from the new instance resuming first.
            await using var toB = new TcpProxy(int.Parse(b.ClientEndpoint.Split(':')[1], System.Globalization.CultureInfo.InvariantCulture));
            toB.Cut();
            await using var current = await BrokerClient.ConnectAsync(clientOptions with { Endpoints = [a.ClientEndpoint, toB.Endpoint] });
            for (var i = 20; i < 30; i++)
            {
                Assert.Equal(i, await current.PublishAsync(Topic, Payload($"new{i}")).AsTask().WaitAsync(TimeSpan.FromSeconds(60)));
            }

            var (oldConnects, currentConnects) = (old.ConnectCount, current.ConnectCount);
            a.Kill();
            await b.WaitForAsync(s => s.Replica is { Connected: false }, "b notices that a is gone");
            var (status, body) = await b.PromoteAsync();
            Assert.True(status == 200, $"POST /promote: {status} {body}");
            await b.WaitForAsync(s => s.IsPrimary, "b is primary");

            await Eventually.TrueAsync(() => old.ConnectCount > oldConnects, "the old instance reconnects to b", TimeSpan.FromSeconds(60));
            var fenced = await Assert.ThrowsAsync<BrokerClientException>(() => old.PublishAsync(Topic, Payload("old-late")).AsTask().WaitAsync(TimeSpan.FromSeconds(60)));
            Assert.Equal(ErrorCode.ProducerFenced, fenced.ErrorCode);
            Assert.Equal(currentConnects, current.ConnectCount); // not back yet

            toB.Restore();
            await Eventually.TrueAsync(() => current.ConnectCount > currentConnects, "the new instance reconnects to b", TimeSpan.FromSeconds(60));
            for (var i = 30; i < 40; i++)
            {
                Assert.Equal(i, await current.PublishAsync(Topic, Payload($"new{i}")).AsTask().WaitAsync(TimeSpan.FromSeconds(60)));
            }

            var content = await TopicContent.ReadAsync(b.ClientEndpoint, Topic);
            Assert.Equal((0L, 40L), (content.Tail, content.Head));
            Assert.Equal(Enumerable.Range(0, 20).Select(i => $"old{i}"), content.Payloads.Take(20));
            Assert.Equal(Enumerable.Range(20, 20).Select(i => $"new{i}"), content.Payloads.Skip(20));
            output.WriteLine($"b promoted; the old instance fenced ({fenced.Message}); topic head {content.Head}");
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }

    private static byte[] Payload(string text) => System.Text.Encoding.UTF8.GetBytes(text);
}
