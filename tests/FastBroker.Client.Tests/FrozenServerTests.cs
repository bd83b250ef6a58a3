using System.Collections.Concurrent;
using FastBroker.Client;
using FastBroker.Testing;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

/// <summary>
/// A real <c>fastbroker serve</c> frozen (SIGSTOP) while a producer streams and two subscriptions consume on the same
/// client, thawed once the client has counted it dead, then killed with SIGKILL and started again on another port (the
/// client lists both): every publish completes once, is stored once (dense offsets), and a durable subscription and a
/// handler subscription each see every message once, in order.
/// </summary>
public class FrozenServerTests
{
    private static readonly TimeSpan s_long = TimeSpan.FromMinutes(4);

    [Fact]
    public async Task A_server_frozen_then_killed_and_moved_to_another_port_loses_nothing_and_repeats_nothing()
    {
        using var dir = new TempDirectory("fastbroker-client-frozen");
        var serve = await ServeProcess.StartAsync(dir.Path);
        ServeProcess? moved = null;
        try
        {
            using var spare = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
            spare.Start();
            var other = $"127.0.0.1:{((System.Net.IPEndPoint)spare.LocalEndpoint).Port}";
            spare.Stop();
            var events = new ConcurrentQueue<BrokerClientEvent>();
            await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with
            {
                Endpoints = [serve.Endpoint, other],
                HeartbeatInterval = TimeSpan.FromMilliseconds(300),
                ConnectTimeout = TimeSpan.FromSeconds(2),
                ReconnectTimeout = s_long,
                MaxInFlight = 1024,
                OnEvent = events.Enqueue,
            });
            await using var durable = await client.CreateSubscriptionAsync("frozen.t", SubscribeOptions.Default with
            {
                DurableName = "d",
                Start = SubscribeStart.Committed(Protocol.StartKind.Earliest),
                Credit = 64,
            });
            var handled = new ConcurrentQueue<long>();
            await using var consumer = await client.ConsumeAsync("frozen.*", new Recorder(handled), SubscribeOptions.Default with { Start = SubscribeStart.Earliest, Credit = 64 });

            using var stop = new CancellationTokenSource();
            var confirmed = new ConcurrentQueue<long>();
            var producer = Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    var batch = Enumerable.Range(0, 100).Select(_ => client.PublishAsync("frozen.t", Bytes("x")).AsTask()).ToList();
                    foreach (var offset in await Task.WhenAll(batch))
                    {
                        confirmed.Enqueue(offset);
                    }
                }
            });

            // Frozen: the kernel keeps accepting bytes until the buffers fill, then nothing. The client counts it dead.
            await EventuallyAsync(() => confirmed.Count >= 1000 || producer.IsCompleted, "the stream runs", s_long);
            serve.Freeze();
            await EventuallyAsync(() => events.Any(e => e.Kind == BrokerClientEventKind.Disconnected) || producer.IsCompleted, "the client counts the frozen server dead", s_long);
            var connects = client.ConnectCount;
            serve.Thaw();
            await EventuallyAsync(() => client.ConnectCount > connects || producer.IsCompleted, "the client is back on the thawed server", s_long);

            // Killed, and started again on the other listed port.
            var before = confirmed.Count;
            await EventuallyAsync(() => confirmed.Count >= before + 1000 || producer.IsCompleted, "the stream runs again", s_long);
            serve.Kill();
            moved = await ServeProcess.StartAsync(dir.Path, int.Parse(other.Split(':')[1], System.Globalization.CultureInfo.InvariantCulture));
            before = confirmed.Count;
            await EventuallyAsync(() => confirmed.Count >= before + 1000 || producer.IsCompleted, "the stream runs on the moved server", s_long);
            await stop.CancelAsync();
            await producer.WaitAsync(s_long);

            var offsets = confirmed.Order().ToList();
            var n = offsets.Count;
            Assert.Equal(Enumerable.Range(0, n).Select(i => (long)i), offsets); // each once: no duplicate, no gap
            var read = await TakeAsync(durable, n, s_long);
            Assert.Equal(Enumerable.Range(0, n).Select(i => (long)i), read.Select(m => m.Offset));
            await EventuallyAsync(() => handled.Count >= n, "the handler saw every message", s_long);
            Assert.Equal(Enumerable.Range(0, n).Select(i => (long)i), handled);
            Assert.Equal(n, await client.PublishAsync("frozen.t", Bytes("sentinel")).AsTask().WaitAsync(s_long));
            Assert.Equal(moved.Endpoint, client.Endpoint);
            Assert.DoesNotContain(events, e => e.Kind is BrokerClientEventKind.GaveUp or BrokerClientEventKind.ServerError or BrokerClientEventKind.HandlerFailed);
        }
        finally
        {
            serve.Dispose();
            moved?.Dispose();
        }
    }

    private sealed class Recorder(ConcurrentQueue<long> handled) : IClientMessageHandler
    {
        public void OnMessage(scoped in ClientMessageView message) => handled.Enqueue(message.Offset);
    }
}
