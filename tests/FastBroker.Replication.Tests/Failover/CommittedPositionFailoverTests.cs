using FastBroker.Client;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// Invariant 5 across a failover: a durable consumer's position, once its COMMIT is answered, is where the consumer
/// resumes on the new primary after kill -9 of the old one; it is not sent the messages it committed again.
/// </summary>
[Collection(nameof(PairProcessCollection))]
public sealed class CommittedPositionFailoverTests(ITestOutputHelper output)
{
    private const string Topic = "audit.log";
    private const string Durable = "auditor";

    [Fact]
    public async Task Committed_position_survives_failover()
    {
        await using var pair = new PairHarness();
        try
        {
            // A 2 s heartbeat timeout (4 s lease), not 500 ms: on a loaded machine a node the scheduler stalls for that long
            // is taken for dead (a primary past its 1 s lease fences itself and b may take over before the commit; a standby
            // silent for 2 s is detached and, with --degrade-to-local, may be recorded behind and kept from the lease).
            // The kill still comes right after the answered COMMIT, and b is still promoted only once a's lease has run out.
            var (a, b, before) = await pair.StartWitnessedPairAsync("--acks", "standby-durable", "--heartbeat-timeout-ms", "2000", "--degrade-to-local");

            var endpoints = new[] { a.ClientEndpoint, b.ClientEndpoint };
            await using (var producer = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = endpoints }))
            {
                for (var i = 0; i < 200; i++)
                {
                    await producer.PublishAsync(Topic, [(byte)i]);
                }
            }

            long committed;
            await using (var consumer = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = endpoints, Reconnect = false }))
            {
                await using var sub = await consumer.CreateSubscriptionAsync(Topic, SubscribeOptions.Default with { DurableName = Durable, Start = SubscribeStart.Committed(FastBroker.Protocol.StartKind.Earliest) });
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                ClientMessage m;
                do
                {
                    m = await sub.ReadAsync(timeout.Token);
                }
                while (m.Offset < 99);

                await sub.CommitAsync(m, timeout.Token); // answered: the position after offset 99 is committed
                committed = m.Offset + 1;
                a.Kill();
            }

            await b.WaitForAsync(s => s.IsPrimary && s.Epoch > before.Epoch, "b is promoted");
            await using var resumed = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [b.ClientEndpoint], Reconnect = false });
            await using var again = await resumed.CreateSubscriptionAsync(Topic, SubscribeOptions.Default with { DurableName = Durable, Start = SubscribeStart.Committed(FastBroker.Protocol.StartKind.Earliest) });
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            var first = await again.ReadAsync(wait.Token);
            output.WriteLine($"committed {committed} on a; resumed at {first.Offset} on b");
            Assert.Equal(committed, first.Offset);
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }
}
