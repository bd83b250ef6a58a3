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
        using var held = new HeldCalls();
        var log = new System.Collections.Concurrent.ConcurrentQueue<string>();
        void Log(string line)
        {
            log.Enqueue(line);
            if (line.Contains("took no bytes", StringComparison.Ordinal))
            {
                held.Hold();
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

            await Eventually.TrueAsync(() => held.Entered >= 1, "an idle check logs a connection that takes no bytes and is held", TimeSpan.FromSeconds(30));
            var skipped = f.Server.IdleChecksSkipped;

            // Either the timer fires again and again and those callbacks skip, or a second check runs into another connection's line.
            await Eventually.TrueAsync(() => f.Server.IdleChecksSkipped - skipped >= 5 || held.MaxInFlight > 1, "five more idle timer callbacks while the check is held", TimeSpan.FromSeconds(30));
            Assert.True(held.MaxInFlight == 1, $"{held.MaxInFlight} idle checks in the log at once while one was held ({f.Server.IdleChecksSkipped - skipped} skipped): each started anyway and tied up another pool thread");

            held.Release();
            await Eventually.TrueAsync(() => f.Server.ConnectionCount == 0, "every connection that takes no bytes is closed once the checks go on", TimeSpan.FromSeconds(30));
            Assert.Equal(1, held.MaxInFlight);
            foreach (var c in connections)
            {
                await c.DisposeAsync();
            }
        }
        finally
        {
            held.Release();
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
}
