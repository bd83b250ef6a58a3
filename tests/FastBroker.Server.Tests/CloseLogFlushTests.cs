using FastBroker.Testing;

namespace FastBroker.ServerTests;

/// <summary>
/// The counts the close-line limiter holds back are written, not lost: by the idle timer once the text has been quiet
/// for the interval, and by <c>StopAsync</c> at the latest. A real server on 127.0.0.1, bad frames from real sockets,
/// a log clock the test moves by hand.
/// </summary>
public class CloseLogFlushTests
{
    private const int BadConnections = 6;

    private static readonly string s_heldBack = $"(and {BadConnections - 1} more like it since the last such line, not logged; no longer repeating)";

    [Fact]
    public async Task Close_lines_held_back_are_written_when_the_server_stops()
    {
        var clock = new ManualClock(); // never moved: the interval never ends, only the stop can write the count
        await using var f = await ServerFixture.StartAsync(o => o with { LogClock = clock });
        for (var i = 0; i < BadConnections; i++)
        {
            await f.SendBadFrameAsync();
        }

        Assert.True(f.Closes.Count == 1, $"{BadConnections} connections closed for the same frame, one line expected: [{string.Join(" | ", f.Closes)}]");

        await f.Server.StopAsync(TimeSpan.FromSeconds(2));
        var lines = f.Closes;
        Assert.True(
            lines.Count == 2 && lines[1].EndsWith(s_heldBack, StringComparison.Ordinal) && lines[1].Contains(Reason(lines[0]), StringComparison.Ordinal),
            $"the stop writes the count of {BadConnections - 1} held back: [{string.Join(" | ", lines)}]");
    }

    [Fact]
    public async Task Close_lines_held_back_are_written_by_the_idle_timer_once_their_text_is_quiet_for_the_interval()
    {
        var clock = new ManualClock();
        await using var f = await ServerFixture.StartAsync(o => o with { LogClock = clock, HeartbeatInterval = TimeSpan.FromSeconds(2) });
        for (var i = 0; i < BadConnections; i++)
        {
            await f.SendBadFrameAsync();
        }

        Assert.True(f.Closes.Count == 1, $"{BadConnections} connections closed for the same frame, one line expected: [{string.Join(" | ", f.Closes)}]");

        clock.Advance(TimeSpan.FromSeconds(10));
        await Eventually.TrueAsync(() => f.Closes.Count >= 2, "the idle timer writes the count once the text is quiet for the interval", TimeSpan.FromSeconds(60));
        var lines = f.Closes;
        Assert.True(lines.Count == 2 && lines[1].EndsWith(s_heldBack, StringComparison.Ordinal), $"one line with the count of {BadConnections - 1}: [{string.Join(" | ", lines)}]");

        // The text is forgotten: its next close is logged at once, and the stop has nothing more to write.
        await f.SendBadFrameAsync();
        await f.Server.StopAsync(TimeSpan.FromSeconds(2));
        lines = f.Closes;
        Assert.True(
            lines.Count == 3 && lines[2].EndsWith(Reason(lines[0]), StringComparison.Ordinal),
            $"the next close at once, without a count: [{string.Join(" | ", lines)}]");
    }

    /// <summary>What a close line says after its connection id and address: the same for every bad frame of the test.</summary>
    private static string Reason(string line) => line[(line.IndexOf(": closing: ", StringComparison.Ordinal) + 2)..];
}
