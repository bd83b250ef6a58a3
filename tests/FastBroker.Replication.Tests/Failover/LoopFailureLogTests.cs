using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using FastBroker.Replication;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// An unexpected failure of a node's loop, which retries every heartbeat interval (100 ms), does not flood the node's
/// log when it repeats as it is (a standby stuck Starting logged one line per 100 ms): the first is written at once and
/// whole, then at most one per 10 s with the count of those not logged; another message, or the same after a round
/// without a failure, is written at once. A standby "b" whose peer refuses connects, the tests' LinkEnded hook throwing
/// after each link attempt (one round of the loop each), and a log clock the test moves by hand.
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed partial class LoopFailureLogTests
{
    private const string Unexpected = "node 'b': unexpected InvalidOperationException in role Standby: ";

    /// <summary>Rounds of the loop a test lets fail before it counts the lines.</summary>
    private const int Rounds = 20;

    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_failure_that_repeats_is_logged_once_then_once_per_interval_with_the_count_not_logged()
    {
        using var dir = new TempDirectory();
        var clock = new ManualClock();
        var loop = new FailingLoop("the disk is full");
        await using var node = await StartStandbyAsync(dir, loop, clock);

        // The hook's call for round N+1 comes after the supervisor logged round N's failure.
        await Eventually.TrueAsync(() => loop.Calls > Rounds, $"b's loop fails {Rounds} rounds", s_deadline);
        var lines = UnexpectedLines(loop);
        Assert.True(lines.Count == 1, $"{Rounds} failures of the loop within the interval, one line expected: [{string.Join(" | ", lines)}]");
        Assert.Equal($"{Unexpected}the disk is full", lines[0][(lines[0].IndexOf("node 'b'", StringComparison.Ordinal))..]);

        clock.Advance(TimeSpan.FromSeconds(10));
        await Eventually.TrueAsync(() => UnexpectedLines(loop).Count >= 2, "b logs the failure again once the interval is over", s_deadline);
        var calls = loop.Calls;
        lines = UnexpectedLines(loop);
        Assert.True(lines.Count == 2, $"one line after the interval expected: [{string.Join(" | ", lines)}]");
        var count = HeldBackCount().Match(lines[1]);
        Assert.True(count.Success, $"the second line does not count the failures not logged: {lines[1]}");
        var heldBack = int.Parse(count.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(heldBack, Rounds - 1, calls - 2); // every failure between the two lines
    }

    [Fact]
    public async Task Another_failure_or_the_same_after_a_round_without_one_is_logged_at_once()
    {
        using var dir = new TempDirectory();
        var loop = new FailingLoop("journal 'orders' is damaged");
        await using var node = await StartStandbyAsync(dir, loop, new ManualClock()); // never moved: the interval never ends

        await Eventually.TrueAsync(() => loop.Calls > Rounds, $"b's loop fails {Rounds} rounds", s_deadline);
        Assert.Single(UnexpectedLines(loop));

        loop.Message = "the open of 'orders' was refused";
        await Eventually.TrueAsync(
            () => UnexpectedLines(loop).Any(l => l.EndsWith("the open of 'orders' was refused", StringComparison.Ordinal)),
            "b logs a failure with another message at once",
            s_deadline);
        var before = loop.Calls;
        await Eventually.TrueAsync(() => loop.Calls > before + Rounds, $"b's loop fails {Rounds} more rounds", s_deadline);
        Assert.Equal(2, UnexpectedLines(loop).Count(l => !l.Contains("not logged", StringComparison.Ordinal)));

        loop.SucceedOnce();
        await Eventually.TrueAsync(
            () => UnexpectedLines(loop).Count(l => l.EndsWith("the open of 'orders' was refused", StringComparison.Ordinal)) >= 2,
            "b logs the same failure at once after a round of its loop without one",
            s_deadline);
        var lines = UnexpectedLines(loop);
        Assert.True(
            lines.Any(l => l.Contains("the open of 'orders' was refused (and ", StringComparison.Ordinal) && l.EndsWith("not logged; no longer repeating)", StringComparison.Ordinal)),
            $"the repeats not logged before the round without a failure are counted: [{string.Join(" | ", lines)}]");
    }

    private static List<string> UnexpectedLines(FailingLoop loop) => loop.Log.Where(l => l.Contains(Unexpected, StringComparison.Ordinal)).ToList();

    [GeneratedRegex(@"\(and (\d+) more like it since the last such line, not logged\)$")]
    private static partial Regex HeldBackCount();

    private static async Task<ReplicatedNode> StartStandbyAsync(TempDirectory dir, FailingLoop loop, TimeProvider clock)
    {
        var node = await ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, new ReplicationOptions
        {
            NodeId = "b",
            DataDirectory = dir.Combine("b"),
            Port = FreePort.Next(),
            Peer = RefusedEndPoint().ToString(),
            InitialRole = NodeRole.Standby,
            Log = loop.Log.Enqueue,
            LogClock = clock,
            LinkEnded = loop.LinkEnded,
        });
        if (!await node.WaitForRoleAsync(NodeRole.Standby, TimeSpan.FromSeconds(30)))
        {
            await node.DisposeAsync();
            Assert.Fail($"b becomes standby:\n{string.Join('\n', loop.Log)}");
        }

        return node;
    }

    /// <summary>An endpoint on 127.0.0.1 where nothing listens (a listener bound and closed): connects are refused.</summary>
    private static IPEndPoint RefusedEndPoint()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        return (IPEndPoint)listener.LocalEndPoint!;
    }

    /// <summary>The LinkEnded hook: throws <see cref="Message"/> after every link attempt, but one after <see cref="SucceedOnce"/>.</summary>
    private sealed class FailingLoop(string message)
    {
        private int _calls;
        private int _succeed;

        public System.Collections.Concurrent.ConcurrentQueue<string> Log { get; } = new();

        public string Message { get; set; } = message;

        /// <summary>Rounds of the loop that reached the hook.</summary>
        public int Calls => Volatile.Read(ref _calls);

        public void SucceedOnce() => Volatile.Write(ref _succeed, 1);

        public void LinkEnded(string why)
        {
            Interlocked.Increment(ref _calls);
            if (Interlocked.Exchange(ref _succeed, 0) == 0)
            {
                throw new InvalidOperationException(Message);
            }
        }
    }
}
