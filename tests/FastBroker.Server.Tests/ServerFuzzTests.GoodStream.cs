using FastBroker.Protocol;
using FastBroker.Testing;

namespace FastBroker.ServerTests;

public partial class ServerFuzzTests
{
    /// <summary>
    /// A publisher and a subscriber on their own connections: each round publishes a few messages, waits for their
    /// confirmations, and must receive exactly them, next in the topic's order.
    /// </summary>
    private sealed class GoodStream : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private RawConnection _pub = null!;
        private RawConnection _sub = null!;
        private Task _loop = Task.CompletedTask;
        private int _rounds;

        public int Rounds => Volatile.Read(ref _rounds);

        public string? Failure { get; private set; }

        public static async Task<GoodStream> StartAsync(ServerFixture f)
        {
            var g = new GoodStream { _pub = await f.ConnectAsync(), _sub = await f.ConnectAsync() };
            await g._sub.SubscribeAsync(1, 1, GoodTopic, 1_000_000, Protocol.StartKind.Earliest);
            var ok = await g._sub.ReadAsync();
            Assert.True(ok.Type == FrameType.Ok, $"good SUBSCRIBE: {ok}");
            g._loop = Task.Run(g.LoopAsync);
            return g;
        }

        public async Task StopAsync()
        {
            _stop.Cancel();
            await Eventually.Completes(_loop);
        }

        public async ValueTask DisposeAsync()
        {
            _stop.Cancel();
            await _loop.WaitAsync(TimeSpan.FromSeconds(60));
            await _pub.DisposeAsync();
            await _sub.DisposeAsync();
            _stop.Dispose();
        }

        private async Task LoopAsync()
        {
            ulong next = 0; // the offset and the number in the payload of the next message
            ulong requestId = 1;
            try
            {
                while (!_stop.IsCancellationRequested)
                {
                    var ids = new List<ulong>();
                    for (var i = 0; i < 5; i++)
                    {
                        ids.Add(requestId);
                        await _pub.PublishAsync(requestId++, GoodTopic, $"good {next + (ulong)i}");
                    }

                    var confirms = await _pub.ReadConfirmsAsync(ids);
                    for (var i = 0; i < ids.Count; i++)
                    {
                        var (status, offset, duplicate) = confirms[ids[i]];
                        Check(status == ErrorCode.None && !duplicate && offset == next + (ulong)i, $"publish {ids[i]} confirmed as {status} at {offset} (duplicate {duplicate}), expected offset {next + (ulong)i}");
                    }

                    var deliveries = await _sub.ReadDeliveriesAsync(5);
                    for (var i = 0; i < deliveries.Count; i++)
                    {
                        var d = deliveries[i];
                        Check(d.Offset == next + (ulong)i && d.Text == $"good {next + (ulong)i}", $"delivery {i} of the round: {d}, expected offset {next + (ulong)i}");
                    }

                    Check(deliveries.Count == 5, $"{deliveries.Count} deliveries, 5 expected");
                    next += 5;
                    Interlocked.Increment(ref _rounds);
                }
            }
            catch (Exception e)
            {
                Failure ??= e.ToString();
            }
        }

        private void Check(bool condition, string what)
        {
            if (!condition)
            {
                throw new InvalidOperationException($"good stream: {what}");
            }
        }
    }
}
