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
}
