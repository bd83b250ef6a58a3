using FastBroker.Client;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A pair without a witness: the operator names the primary, and after its kill -9 promotes the standby by hand
/// (<c>POST /promote</c>). The producer that was publishing through the kill carries on against the promoted node
/// and no confirmed message is lost or stored twice.
/// </summary>
[Collection(nameof(PairProcessCollection))]
public sealed class ManualFailoverTests(ITestOutputHelper output)
{
    private const string Topic = "manual.orders";
    private const string Prefix = "p";

    [Fact]
    public async Task Manual_promotion_without_witness()
    {
        await using var pair = new PairHarness();
        try
        {
            int portA = FreePort.Next(), portB = FreePort.Next();
            // A 2 s heartbeat timeout, not the default 500 ms: a standby stalled that long by a loaded machine is
            // detached, a confirms the publishes as local meanwhile (--degrade-to-local, no witness), and b, promoted
            // after the kill, lacks them. The kill itself closes the link at once, so nothing here waits on the timeout.
            string[] options = ["--acks", "standby-durable", "--degrade-to-local", "--heartbeat-timeout-ms", "2000"];
            var a = pair.AddNode("a", portA, $"127.0.0.1:{portB}", [.. options, "--role", "primary"]);
            var b = pair.AddNode("b", portB, $"127.0.0.1:{portA}", [.. options, "--role", "standby"]);
            await a.StartAsync();
            await b.StartAsync();
            var before = await a.WaitForAsync(s => s.StandbyConfirming, "a is primary and b confirms its publishes");
            await b.WaitForAsync(s => s.IsStandby && s.Replica is { Connected: true }, "b follows a");

            await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with
            {
                Endpoints = [a.ClientEndpoint, b.ClientEndpoint],
                ReconnectTimeout = TimeSpan.FromSeconds(60),
                ReconnectMaxDelay = TimeSpan.FromMilliseconds(100),
                ConnectTimeout = TimeSpan.FromSeconds(5),
                MaxInFlight = 256,
                Durability = FastBroker.Protocol.Durability.StandbyDurable, // per publish, whatever the topic's default
            });
            var publisher = new SequencedPublisher(client, Topic, Prefix);
            using var stop = new CancellationTokenSource();
            var publishing = Task.Run(() => publisher.RunAsync(window: 64, stop.Token));
            await Eventually.TrueAsync(() => publisher.Confirmed >= 500 || publishing.IsCompleted, "publishes are confirmed by the pair");
            Assert.False(publishing.IsCompleted, publishing.Exception?.ToString() ?? "the publisher stopped by itself");

            var connectionAtKill = client.ConnectCount;
            var confirmedAtKill = publisher.Confirmed;
            a.Kill();

            // Nothing promotes b by itself without a witness: it keeps waiting for a until told otherwise.
            var waiting = await b.WaitForAsync(s => s.Replica is { Connected: false }, "b notices that a is gone");
            Assert.True(waiting.IsStandby, waiting.Json);

            var (status, body) = await b.PromoteAsync();
            Assert.True(status == 200, $"POST /promote: {status} {body}");
            Assert.Contains("\"promoted\":true", body, StringComparison.Ordinal);
            var promoted = await b.WaitForAsync(s => s.IsPrimary, "b is primary");
            Assert.True(promoted.Epoch > before.Epoch, $"b's epoch {promoted.Epoch} must be newer than a's {before.Epoch}");
            Assert.Contains($"\"epoch\":{promoted.Epoch}", body, StringComparison.Ordinal);

            await Eventually.TrueAsync(() => client.ConnectCount > connectionAtKill || publishing.IsCompleted, "the client moves to b");
            var confirmedAtReconnect = publisher.Confirmed;
            await Eventually.TrueAsync(() => publisher.Confirmed >= confirmedAtReconnect + 300 || publishing.IsCompleted, "publishes are confirmed by b");
            await stop.CancelAsync();
            await publishing.WaitAsync(TimeSpan.FromSeconds(60));

            var content = await TopicContent.ReadAsync(b.ClientEndpoint, Topic);
            var all = publisher.All;
            var checkedCount = ConfirmedMessages.AssertExactlyOnce(all, content, Prefix);
            var failed = all.Count(p => p.Error is not null);
            output.WriteLine($"killed a with {confirmedAtKill} confirmed; b promoted to epoch {promoted.Epoch}; {checkedCount} confirmed, all present once, in order, {failed} failed; topic head {content.Head}");
            Assert.True(failed == 0, $"{failed} publishes failed, first: {all.FirstOrDefault(p => p.Error is not null)?.Error}");
            Assert.True(all.Any(p => p.IsConfirmed && p.Connection > connectionAtKill), "nothing was confirmed by b");

            // A second promotion of a primary is refused.
            var (again, againBody) = await b.PromoteAsync();
            Assert.True(again == 409, $"promoting the primary again: {again} {againBody}");
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }

    /// <summary>
    /// Regression: <c>POST /promote</c> on a standby whose primary still holds the witness lease is refused (409), and
    /// the standby goes on following the primary. It used to keep the replica it had stopped for the promotion, so it
    /// never reconnected ("link down: stopping" in a loop) and every standby-mode publish failed with NotReplicated.
    /// </summary>
    [Fact]
    public async Task Refused_promotion_leaves_the_standby_following_the_primary()
    {
        await using var pair = new PairHarness();
        try
        {
            var witness = await pair.StartWitnessAsync();
            int portA = FreePort.Next(), portB = FreePort.Next();
            // A 2 s heartbeat timeout (4 s lease), not the default 500 ms: a stalled by a loaded machine past a 1 s lease
            // would fence itself and b's promotion be rightly granted. a, alive, still holds the lease when b asks.
            string[] options = ["--witness", witness.Endpoint, "--acks", "standby-durable", "--heartbeat-timeout-ms", "2000"];
            var a = pair.AddNode("a", portA, $"127.0.0.1:{portB}", options);
            var b = pair.AddNode("b", portB, $"127.0.0.1:{portA}", options);
            await a.StartAsync();
            var primary = await a.WaitForAsync(s => s.IsPrimary, "a takes the lease");
            await b.StartAsync();
            await b.WaitForAsync(s => s.IsStandby && s.Replica is { Connected: true }, "b follows a");
            await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [a.ClientEndpoint], Reconnect = false });
            await client.PublishAsync(Topic, "before"u8);

            var (status, body) = await b.PromoteAsync();
            Assert.True(status == 409, $"POST /promote while a holds the lease: {status} {body}");
            Assert.Contains("\"promoted\":false", body, StringComparison.Ordinal);

            await b.WaitForAsync(s => s.IsStandby && s.Replica is { Connected: true, PrimaryId: "a" }, "b follows a again after the refusal", TimeSpan.FromSeconds(30));
            var offset = await client.PublishAsync(Topic, "after"u8).AsTask().WaitAsync(TimeSpan.FromSeconds(30)); // standby-durable: needs b
            await b.WaitForAsync(s => s.ReplicaOf(Topic) is { Durable: var d } && d == offset + 1, "b holds the publish made after the refusal");
            var still = await a.WaitForAsync(s => s.IsPrimary, "a is still primary");
            Assert.Equal(primary.Epoch, still.Epoch);
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }
}
