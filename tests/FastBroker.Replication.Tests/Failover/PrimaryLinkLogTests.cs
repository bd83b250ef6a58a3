using System.Collections.Concurrent;
using System.Net.Sockets;
using FastBroker.Replication;
using FastBroker.Replication.Internal;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A standby whose link ends the same way every round reconnects at once, so the primary's link lines
/// (<c>replication: standby 'b' attached …</c>, <c>… disconnected: …</c>) would come in a pair per round: each text is
/// written at once, then at most once per 10 s with the count not logged, until a link stays up (the standby answers a
/// heartbeat), whose end is logged at once. A stand-in standby on 127.0.0.1 says HELLO and STATE_DIGESTS, reads up to
/// the POSITIONS that end the attach, and closes the link, orderly; a log clock the test never moves.
/// </summary>
public sealed class PrimaryLinkLogTests
{
    /// <summary>Links the stand-in ends before the test counts the lines.</summary>
    private const int Rounds = 20;

    private const string Attached = "replication: standby 'b' attached";
    private const string Closed = "replication: standby 'b' disconnected: the standby closed the connection";

    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_standby_that_attaches_and_closes_every_round_is_logged_once_and_a_link_that_stays_up_is_logged_when_it_ends()
    {
        using var dir = new TempDirectory();
        var lines = new ConcurrentQueue<string>();
        // A log clock never moved: the interval never ends. The stand-in answers one heartbeat only.
        await using var node = await StandInStandby.StartPrimaryAsync(dir, lines, logClock: new ManualClock());
        Assert.True(await node.WaitForRoleAsync(NodeRole.Primary, s_deadline), "a becomes primary");

        for (var i = 0; i < Rounds; i++)
        {
            var link = StandInStandby.Attach(node, out _);
            using (link)
            {
                Close(link); // returns once a has ended the link, so the next round is a new link, not a replacement
            }
        }

        // The attach line is written by the link's sender thread before it starts the ack reader (StandbyLink.SendLoop),
        // which reads the close and ends the link (what Close waits for): so it is there, and before the end's line.
        var logged = Lines(lines, "replication: standby 'b'");
        Assert.True(
            logged.Count == 2 && logged[0].StartsWith(Attached, StringComparison.Ordinal) && logged[1] == Closed,
            $"{Rounds} links attached and closed within the interval, one line of each expected: [{string.Join(" | ", logged)}]");

        // A link that stays up: b answers a heartbeat. The run is over (its counts are logged), and the link's end,
        // the same text as the last one logged, is logged at once.
        var up = StandInStandby.Attach(node, out var input);
        using (up)
        {
            while (input.Read(out var kind, out _) && kind != FrameKind.Heartbeat)
            {
            }

            var ack = new FrameBuffer(64);
            ack.Begin(FrameKind.Ack).U32(0).End();
            ack.SendTo(up);
            await Eventually.TrueAsync(
                () => Lines(lines, "no longer repeating").Count > 0, "a logs the counts of the link lines not logged once a link stays up", s_deadline);
            Close(up);
        }

        Assert.True(lines.Count(l => l == Closed) == 2, $"the end of a link that stayed up, logged at once expected: [{string.Join(" | ", lines)}]");
        Assert.Contains(lines, l => l.StartsWith(Closed, StringComparison.Ordinal) && l.EndsWith($"(and {Rounds - 1} more like it since the last such line, not logged; no longer repeating)", StringComparison.Ordinal));
    }

    private static List<string> Lines(ConcurrentQueue<string> lines, string text) =>
        [.. lines.Where(l => l.Contains(text, StringComparison.Ordinal))];

    /// <summary>An orderly close: FIN, then what a still sends read until it closes its end (never a reset for unread bytes).</summary>
    private static void Close(Socket link)
    {
        link.Shutdown(SocketShutdown.Send);
        var rest = new byte[64 << 10];
        while (link.Receive(rest) > 0)
        {
        }
    }
}
