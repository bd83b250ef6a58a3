using System.Diagnostics;
using System.Globalization;
using FastBroker.Client;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// Invariants 1 and 6 across real processes: a witness and two <c>fastbroker serve</c> nodes, a client publishing
/// without pause in ack mode standby-durable, and kill -9 of whichever node is primary at a random moment, round
/// after round. The standby takes over by itself (witness lease); no confirmed message may be lost or stored twice.
/// </summary>
[Collection(nameof(PairProcessCollection))]
public sealed class AutomaticFailoverTests(ITestOutputHelper output)
{
    private const string Topic = "failover.orders";
    private const string Prefix = "m";

    /// <summary>Confirmations on the new primary before a round ends: enough to show the pair works again, cheap on 2 cores.</summary>
    private const int ConfirmedAfterFailover = 200;

    /// <summary>
    /// Not the default 500 ms (1 s lease): on a loaded 2-vCPU machine a node the scheduler stalls for more than that is
    /// taken for dead (a primary misses its renewals and fences itself, a standby asks for the lease), and the pair
    /// changes roles by itself between and after the kills. With 2 s (4 s lease) every kill is still a real failover:
    /// the standby is promoted only once the killed primary's lease has run out, and the test asserts nothing about how
    /// long that takes (the client's 30 s reconnect timeout and the 60 s waits leave room for the 4 s lease).
    /// </summary>
    private const int HeartbeatTimeoutMs = 2000;

    [Fact]
    public async Task Failover_with_witness_loses_and_duplicates_no_confirmed_message()
    {
        var rounds = int.TryParse(Environment.GetEnvironmentVariable("FASTBROKER_FAILOVER_ROUNDS"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var r) && r > 0 ? r : 3;
        var seed = Environment.TickCount;
        var random = new Random(seed);
        output.WriteLine($"seed {seed}, {rounds} rounds");
        await using var pair = new PairHarness();
        try
        {
            var witness = await pair.StartWitnessAsync();
            int portA = FreePort.Next(), portB = FreePort.Next();

            // --degrade-to-local: while the killed node is down the new primary confirms locally instead of failing
            // every publish with NotReplicated; each round starts only once the restarted standby holds everything.
            string[] options = ["--witness", witness.Endpoint, "--acks", "standby-durable", "--heartbeat-timeout-ms", $"{HeartbeatTimeoutMs}", "--degrade-to-local"];
            var a = pair.AddNode("a", portA, $"127.0.0.1:{portB}", options);
            var b = pair.AddNode("b", portB, $"127.0.0.1:{portA}", options);
            await a.StartAsync();
            await a.WaitForAsync(s => s.IsPrimary, "a takes the witness lease and becomes primary");
            await b.StartAsync();
            await b.WaitForAsync(s => s.IsStandby && s.Replica is { Connected: true }, "b follows a");

            await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with
            {
                Endpoints = [a.ClientEndpoint, b.ClientEndpoint],
                ReconnectTimeout = TimeSpan.FromSeconds(30),
                ReconnectMaxDelay = TimeSpan.FromMilliseconds(100), // the failover time measured is the pair's, not the client's back-off
                ConnectTimeout = TimeSpan.FromSeconds(5),
                MaxInFlight = 256,
                ClientName = "failover-producer",
            });
            await client.PublishAsync(Topic, "created"u8); // the topic exists on both nodes before the first kill
            var publisher = new SequencedPublisher(client, Topic, Prefix);
            var (primary, standby) = (a, b);
            var failoverTimes = new List<TimeSpan>();
            for (var round = 1; round <= rounds; round++)
            {
                var before = await primary.WaitForAsync(s => s.StandbyCaughtUp(Topic), $"round {round}: the standby holds the whole topic durably");

                using var stop = new CancellationTokenSource();
                var publishing = Task.Run(() => publisher.RunAsync(window: 64, stop.Token));
                await Task.Delay(random.Next(100, 601)); // the random moment of the kill, not a synchronisation
                Assert.False(publishing.IsCompleted, publishing.Exception?.ToString() ?? "the publisher stopped by itself");
                var connectionAtKill = client.ConnectCount;
                var confirmedAtKill = publisher.Confirmed;
                var inFlightAtKill = client.PendingPublishes;
                var killedAt = Stopwatch.GetTimestamp();
                primary.Kill();

                var promoted = await standby.WaitForAsync(s => s.IsPrimary && s.Epoch > before.Epoch, $"round {round}: {standby.Id} is promoted after the kill of {primary.Id}");
                await Eventually.TrueAsync(() => client.ConnectCount > connectionAtKill || publishing.IsCompleted, $"round {round}: the client reconnects to {standby.Id}");
                var confirmedAtReconnect = publisher.Confirmed;
                await Eventually.TrueAsync(() => publisher.Confirmed >= confirmedAtReconnect + ConfirmedAfterFailover || publishing.IsCompleted, $"round {round}: publishes are confirmed on the new primary");
                await stop.CancelAsync();
                await publishing.WaitAsync(TimeSpan.FromSeconds(60));

                var all = publisher.All;
                var onNew = all.Where(p => p.IsConfirmed && p.Connection > connectionAtKill).ToList();
                Assert.True(onNew.Count > 0, $"round {round}: nothing was confirmed on the new primary");
                var failover = Stopwatch.GetElapsedTime(killedAt, onNew.Min(p => p.ConfirmedAt));
                failoverTimes.Add(failover);

                var content = await TopicContent.ReadAsync(standby.ClientEndpoint, Topic);
                var checkedCount = ConfirmedMessages.AssertExactlyOnce(all, content, Prefix);
                var failed = all.Where(p => p.Error is not null).ToList();
                output.WriteLine(
                    $"round {round}: killed {primary.Id} (epoch {before.Epoch}) with {confirmedAtKill} confirmed, {inFlightAtKill} in flight; {standby.Id} primary at epoch {promoted.Epoch}; " +
                    $"first confirmation on it {failover.TotalMilliseconds:F0} ms after the kill; topic head {content.Head}; {checkedCount} confirmed, all present once, in order; {failed.Count} failed");
                Assert.True(failed.Count == 0, $"round {round}: {failed.Count} publishes failed, first: {failed.FirstOrDefault()?.Error}");

                // The killed node comes back as the standby of the new epoch and copies what it missed.
                await primary.StartAsync();
                var rejoined = await primary.WaitForAsync(
                    s => s.IsStandby && s.Epoch == promoted.Epoch && s.ReplicaOf(Topic) is { } copy && copy.Next == content.Head && copy.Durable == content.Head,
                    $"round {round}: {primary.Id} rejoins as standby of epoch {promoted.Epoch} and catches up to {content.Head}");
                output.WriteLine($"round {round}: {primary.Id} rejoined: {(rejoined.Replica!.Truncations.Count == 0 ? "nothing to cut" : string.Join("; ", rejoined.Replica.Truncations))}");
                (primary, standby) = (standby, primary);
            }

            output.WriteLine($"failover times (kill -> first confirmed publish on the new primary): {string.Join(", ", failoverTimes.Select(t => $"{t.TotalMilliseconds:F0} ms"))}");
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }
}
