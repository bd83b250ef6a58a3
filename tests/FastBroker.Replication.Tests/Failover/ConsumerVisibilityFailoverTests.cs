using System.Text;
using System.Text.Json;
using FastBroker.Client;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>serve --consumer-visibility</c> on real pairs: a subscriber on the primary is given a record only once the standby
/// holds it, so kill -9 of the primary and the standby's promotion never take back a record a consumer acted on; without
/// the option it is given what is durable on the primary, as before.
/// </summary>
[Collection(nameof(PairProcessCollection))]
public sealed class ConsumerVisibilityFailoverTests(ITestOutputHelper output)
{
    private const string Topic = "hw.orders";

    // A 2 s heartbeat timeout, not 500 ms: a standby stalled that long by a loaded machine would be detached, and these
    // tests detach it on purpose only (kill -9 closes the link at once).
    private static readonly string[] s_strict = ["--consumer-visibility", "standby-received", "--heartbeat-timeout-ms", "2000"];

    [Fact]
    public async Task A_record_published_while_the_standby_is_away_reaches_a_subscriber_on_the_primary_once_the_standby_has_it()
    {
        await using var pair = new PairHarness();
        try
        {
            var (a, b, _) = await pair.StartConfiguredPairAsync(s_strict, s_strict);
            await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [a.ClientEndpoint], Reconnect = false });
            await PublishAsync(client, "m", 10);
            await using var subscriber = await Subscriber.StartAsync(a.ClientEndpoint);
            await Eventually.TrueAsync(() => subscriber.Count == 10, "the records the standby holds are given to the subscriber");

            b.Kill();
            await a.WaitForAsync(s => s.IsPrimary && s.Standby is { Attached: false }, "a sees its standby gone");
            await PublishAsync(client, "n", 10); // confirmed as local: durable on a, not on b

            // A status read after the confirmations (the wake-up of a reader of durable records comes with them): the
            // records are still held back from the subscriber. Before the option existed it had them by now.
            var away = await a.WaitForAsync(s => s.IsPrimary, "a still serves");
            Assert.Equal(10, subscriber.Count);
            using (var doc = JsonDocument.Parse(away.Json))
            {
                var standbySection = doc.RootElement.GetProperty("standby");
                Assert.Equal("standby-received", standbySection.GetProperty("consumerVisibility").GetString());
                Assert.True(standbySection.GetProperty("consumerVisibilityGated").GetBoolean(), away.Json);
            }

            await b.StartAsync();
            await a.WaitForAsync(s => s.StandbyConfirming, "b is back and a counts it");
            await Eventually.TrueAsync(() => subscriber.Count == 20, "given once b has them");
            var standby = await b.WaitForAsync(s => s.IsStandby, "b follows a");
            Assert.True(standby.ReplicaOf(Topic)?.Next >= 20, standby.Json);
            Assert.Equal([.. Enumerable.Range(0, 20).Select(i => (long)i)], subscriber.Received.Select(r => r.Offset));
            Assert.Equal("n0000", subscriber.Received[10].Payload);
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }

    [Fact]
    public async Task Every_record_a_subscriber_on_the_primary_received_is_on_the_promoted_standby_at_its_offset()
    {
        await using var pair = new PairHarness();
        try
        {
            // b degrades once promoted (no standby then), so that its own subscribers can read what it holds.
            var (a, b, _) = await pair.StartConfiguredPairAsync(s_strict, [.. s_strict, "--degrade-to-local"]);
            await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [a.ClientEndpoint], Reconnect = false, MaxInFlight = 256 });
            await PublishAsync(client, "m", 200);
            await using var subscriber = await Subscriber.StartAsync(a.ClientEndpoint);
            await Eventually.TrueAsync(() => subscriber.Count >= 100, "the subscriber on a receives");

            // b gone, a goes on confirming (as local) records b lacks, then dies.
            b.Kill();
            await a.WaitForAsync(s => s.IsPrimary && s.Standby is { Attached: false }, "a sees its standby gone");
            await PublishAsync(client, "n", 200);
            await a.WaitForAsync(s => s.IsPrimary, "a still serves");
            a.Kill();
            await subscriber.StoppedAsync();
            var received = subscriber.Received;

            await b.StartAsync();
            await b.WaitForAsync(s => s.IsStandby, "b waits for a primary");
            var (status, body) = await b.PromoteAsync();
            Assert.True(status == 200, $"POST /promote: {status} {body}");
            await b.WaitForAsync(s => s.IsPrimary, "b is primary");
            var content = await TopicContent.ReadAsync(b.ClientEndpoint, Topic);

            output.WriteLine($"a confirmed 400 records; the subscriber on a received {received.Count}; b holds {content.Head}");
            Assert.NotEmpty(received);
            foreach (var (offset, payload) in received)
            {
                Assert.True(offset < content.Head, $"the subscriber received offset {offset} ('{payload}'), which the promoted b does not hold (its head is {content.Head})");
                Assert.Equal(payload, content.At(offset));
            }
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }

    [Fact]
    public async Task With_degrade_to_local_a_subscriber_on_the_primary_is_given_what_it_confirms_while_no_standby_is_attached()
    {
        await using var pair = new PairHarness();
        try
        {
            string[] options = [.. s_strict, "--degrade-to-local"];
            var (a, b, _) = await pair.StartConfiguredPairAsync(options, options);
            await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [a.ClientEndpoint], Reconnect = false });
            await PublishAsync(client, "m", 10);
            await using var subscriber = await Subscriber.StartAsync(a.ClientEndpoint);
            await Eventually.TrueAsync(() => subscriber.Count == 10, "given once the standby holds them");

            // No standby: visibility degrades with the confirmations (Kafka shrinking the ISR to the leader).
            b.Kill();
            await a.WaitForAsync(s => s.IsPrimary && s.Standby is { Attached: false }, "a sees its standby gone");
            await PublishAsync(client, "n", 10);
            await Eventually.TrueAsync(() => subscriber.Count == 20, "degraded: given what is durable on a");

            // A standby back: the bound follows it again, and it catches up.
            await b.StartAsync();
            await a.WaitForAsync(s => s.StandbyConfirming, "b is back and a counts it");
            await PublishAsync(client, "o", 10);
            await Eventually.TrueAsync(() => subscriber.Count == 30, "given once b has them");
            Assert.Equal([.. Enumerable.Range(0, 30).Select(i => (long)i)], subscriber.Received.Select(r => r.Offset));
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }

    [Fact]
    public async Task Without_the_option_a_subscriber_on_the_primary_is_given_what_the_standby_lacks_as_before()
    {
        await using var pair = new PairHarness();
        try
        {
            string[] options = ["--heartbeat-timeout-ms", "2000"];
            var (a, b, _) = await pair.StartConfiguredPairAsync(options, options);
            await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [a.ClientEndpoint], Reconnect = false });
            await PublishAsync(client, "m", 10);
            await using var subscriber = await Subscriber.StartAsync(a.ClientEndpoint);
            await Eventually.TrueAsync(() => subscriber.Count == 10, "given to the subscriber");

            b.Kill();
            await a.WaitForAsync(s => s.IsPrimary && s.Standby is { Attached: false }, "a sees its standby gone");
            await PublishAsync(client, "n", 10);
            await Eventually.TrueAsync(() => subscriber.Count == 20, "durable on a: given without the standby");
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }

    private static async Task PublishAsync(BrokerClient client, string prefix, int count)
    {
        var sent = new List<Task<long>>(count);
        for (var i = 0; i < count; i++)
        {
            sent.Add(client.PublishAsync(Topic, Encoding.UTF8.GetBytes($"{prefix}{i:D4}")).AsTask());
        }

        await Task.WhenAll(sent).WaitAsync(TimeSpan.FromSeconds(60));
    }

    /// <summary>A subscription from the earliest record on one node, read into a list until its connection ends.</summary>
    private sealed class Subscriber : IAsyncDisposable
    {
        private readonly List<(long Offset, string Payload)> _received = [];
        private readonly BrokerClient _client;
        private readonly CancellationTokenSource _stop = new();
        private Task _reading = Task.CompletedTask;

        private Subscriber(BrokerClient client) => _client = client;

        public int Count
        {
            get
            {
                lock (_received)
                {
                    return _received.Count;
                }
            }
        }

        public IReadOnlyList<(long Offset, string Payload)> Received
        {
            get
            {
                lock (_received)
                {
                    return [.. _received];
                }
            }
        }

        public static async Task<Subscriber> StartAsync(string endpoint)
        {
            var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [endpoint], Reconnect = false, ClientName = "visibility-subscriber" });
            var s = new Subscriber(client);
            var sub = await client.CreateSubscriptionAsync(Topic, SubscribeOptions.Default with { Start = SubscribeStart.Earliest, Credit = 1024 });
            s._reading = Task.Run(async () =>
            {
                try
                {
                    while (true)
                    {
                        var m = await sub.ReadAsync(s._stop.Token);
                        lock (s._received)
                        {
                            s._received.Add((m.Offset, Encoding.UTF8.GetString(m.Payload.Span)));
                        }
                    }
                }
                catch (Exception)
                {
                    // the node was killed (the connection's end fails the read), or the test is done
                }

                try
                {
                    await sub.DisposeAsync();
                }
                catch (Exception)
                {
                    // its connection is gone
                }
            });
            return s;
        }

        /// <summary>Returns once the reading loop has ended (its node killed).</summary>
        public Task StoppedAsync() => _reading.WaitAsync(TimeSpan.FromSeconds(60));

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            try
            {
                await _reading.WaitAsync(TimeSpan.FromSeconds(30));
            }
            finally
            {
                await _client.DisposeAsync();
                _stop.Dispose();
            }
        }
    }
}
