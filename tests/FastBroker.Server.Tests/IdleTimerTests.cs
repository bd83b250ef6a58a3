using System.Buffers;
using System.Net.Sockets;
using FastBroker.Protocol;
using FastBroker.Testing;

namespace FastBroker.ServerTests;

public class IdleTimerTests
{
    /// <summary>
    /// The server's idle timer fires on pool threads every quarter heartbeat. A check held up in its log line (a slow
    /// <c>Log</c>, a full stdout pipe; here a log that waits on the test) did not stop the next ones: each started anyway
    /// and, reaching the next connection that takes no bytes, waited in the log on another pool thread. A callback that
    /// finds the previous check running now returns at once and is counted, and the checks go on once it ends.
    /// </summary>
    [Fact]
    public async Task A_held_idle_check_keeps_the_next_ones_from_starting_and_they_resume_when_it_ends()
    {
        using var release = new ManualResetEventSlim(false);
        int inFlight = 0, maxInFlight = 0, entered = 0;
        var log = new System.Collections.Concurrent.ConcurrentQueue<string>();
        void Log(string line)
        {
            log.Enqueue(line);
            if (!line.Contains("took no bytes", StringComparison.Ordinal))
            {
                return;
            }

            var now = Interlocked.Increment(ref inFlight);
            InterlockedMax(ref maxInFlight, now);
            Interlocked.Increment(ref entered);
            try
            {
                release.Wait(Eventually.DefaultTimeout); // held until the test lets it go
            }
            finally
            {
                Interlocked.Decrement(ref inFlight);
            }
        }

        // Idle timeout 3 × 300 ms, a check every 75 ms.
        await using var f = await ServerFixture.StartAsync(o => o with { HeartbeatInterval = TimeSpan.FromMilliseconds(300), Log = Log });
        try
        {
            // Connections that stop reading: the idle check closes each one that took no bytes with a log line (one whose
            // sender the loaded machine starves first is closed for its silence instead, with no line from the check).
            var connections = new List<StallingConnection>();
            for (var i = 0; i < 3; i++)
            {
                connections.Add(await StallingConnection.OpenAsync(f));
            }

            await Eventually.TrueAsync(() => Volatile.Read(ref entered) >= 1, "an idle check logs a connection that takes no bytes and is held", TimeSpan.FromSeconds(30));
            var skipped = f.Server.IdleChecksSkipped;

            // Either the timer fires again and again and those callbacks skip, or a second check runs into another connection's line.
            await Eventually.TrueAsync(() => f.Server.IdleChecksSkipped - skipped >= 5 || Volatile.Read(ref maxInFlight) > 1, "five more idle timer callbacks while the check is held", TimeSpan.FromSeconds(30));
            Assert.True(Volatile.Read(ref maxInFlight) == 1, $"{Volatile.Read(ref maxInFlight)} idle checks in the log at once while one was held ({f.Server.IdleChecksSkipped - skipped} skipped): each started anyway and tied up another pool thread");

            release.Set();
            await Eventually.TrueAsync(() => f.Server.ConnectionCount == 0, "every connection that takes no bytes is closed once the checks go on", TimeSpan.FromSeconds(30));
            Assert.Equal(1, Volatile.Read(ref maxInFlight));
            foreach (var c in connections)
            {
                await c.DisposeAsync();
            }
        }
        finally
        {
            release.Set();
        }
    }

    /// <summary>
    /// Each connection that takes no bytes is closed with a log line; a client that does it again and again (reconnects
    /// and stops reading) got one line each time. The line goes through the per-text limit of the protocol-error closes:
    /// one at once, then, once the text has been quiet for the interval, how many were held back (the idle timer).
    /// </summary>
    [Fact]
    public async Task Connections_that_take_no_bytes_log_one_line_then_a_count()
    {
        const int Connections = 6;
        var clock = new ManualClock();
        var stalled = 0;
        await using var f = await ServerFixture.StartAsync(o => o with
        {
            HeartbeatInterval = TimeSpan.FromMilliseconds(300), // idle timeout 900 ms
            LogClock = clock,
            TestHook = (point, _) =>
            {
                if (point == "stalled")
                {
                    Interlocked.Increment(ref stalled);
                }
            },
        });
        static List<string> Lines(ServerFixture f) => [.. f.Log.Where(l => l.Contains("took no bytes", StringComparison.Ordinal))];

        async Task StallAsync(int count)
        {
            var accepted = f.Server.ConnectionsAccepted;
            var connections = new List<StallingConnection>();
            for (var i = 0; i < count; i++)
            {
                connections.Add(await StallingConnection.OpenAsync(f));
            }

            // The line is written before the socket is dropped: once every connection is gone, every line is in.
            await Eventually.TrueAsync(() => f.Server.ConnectionsAccepted - accepted == count && f.Server.ConnectionCount == 0, $"{count} connections that take no bytes are closed", TimeSpan.FromSeconds(60));
            foreach (var c in connections)
            {
                await c.DisposeAsync();
            }
        }

        await StallAsync(Connections);

        // One whose sender the loaded machine starves first is closed for its silence instead: not every one is a stall.
        var first = Volatile.Read(ref stalled);
        Assert.True(first >= 2, $"only {first} of {Connections} connections were closed for taking no bytes: the limit is not tested");
        Assert.True(Lines(f).Count == 1, $"{first} connections took no bytes, one line expected: [{string.Join(" | ", Lines(f))}]");

        // Once the text has been quiet for the interval, the idle timer logs the count held back.
        clock.Advance(TimeSpan.FromSeconds(10));
        await Eventually.TrueAsync(() => Lines(f).Count >= 2, "the idle timer logs the count held back", TimeSpan.FromSeconds(60));
        var lines = Lines(f);
        Assert.True(
            lines.Count == 2 && lines[1].EndsWith($"(and {first - 1} more like it since the last such line, not logged; no longer repeating)", StringComparison.Ordinal),
            $"the second line carries the count of {first - 1}: [{string.Join(" | ", lines)}]");
    }

    private static void InterlockedMax(ref int target, int value)
    {
        var seen = Volatile.Read(ref target);
        while (value > seen)
        {
            var was = Interlocked.CompareExchange(ref target, value, seen);
            if (was == seen)
            {
                return;
            }

            seen = was;
        }
    }

    /// <summary>HELLO, then PINGs whose PONGs it never reads: the server's writer stalls, then TCP stops this sender too.</summary>
    private sealed class StallingConnection : IAsyncDisposable
    {
        private readonly Socket _socket;
        private readonly Task _sender;

        private StallingConnection(Socket socket, Task sender)
        {
            _socket = socket;
            _sender = sender;
        }

        public static async Task<StallingConnection> OpenAsync(ServerFixture f)
        {
            var socket = new Socket(f.EndPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, ReceiveBufferSize = 64 * 1024 };
            var hello = new ArrayBufferWriter<byte>();
            FrameWriter.WriteHello(hello, 1, "t"u8, "1"u8, ProtocolFeatures.None);
            var chunk = new ArrayBufferWriter<byte>();
            for (var i = 0; i < 10_000; i++)
            {
                FrameWriter.WritePing(chunk, (ulong)i);
            }

            await socket.ConnectAsync(f.EndPoint);
            var sender = Task.Run(async () =>
            {
                try
                {
                    await socket.SendAsync(hello.WrittenMemory);
                    for (var sent = 0; sent < 1_000_000; sent += 10_000)
                    {
                        await socket.SendAsync(chunk.WrittenMemory);
                    }
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException)
                {
                    // reset by the server when it drops the connection
                }
            });
            return new StallingConnection(socket, sender);
        }

        public async ValueTask DisposeAsync()
        {
            await Eventually.Completes(_sender);
            _socket.Dispose();
        }
    }
}
