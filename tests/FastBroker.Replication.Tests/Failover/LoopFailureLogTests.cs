using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using FastBroker.Replication;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// An unexpected failure of a node's loop, which retries every heartbeat interval (100 ms), does not flood the node's
/// log when it repeats (a standby stuck Starting logged one line per 100 ms), whether rounds without a failure or other
/// failures come between or not: the first of a message is written at once and whole, then at most one per 10 s with
/// the count of those not logged; another message at once; a message not seen for a whole interval has its count
/// logged. A standby "b" whose peer refuses connects, the tests' LinkEnded hook throwing after link attempts (one round
/// of the loop each), and a log clock the test moves by hand.
/// </summary>
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
    public async Task A_failure_that_alternates_with_rounds_without_one_is_logged_once_then_once_per_interval()
    {
        using var dir = new TempDirectory();
        var clock = new ManualClock();
        var loop = new FailingLoop(n => n % 2 == 1 ? "the disk is full" : null); // fail, ok, fail, ok …
        await using var node = await StartStandbyAsync(dir, loop, clock);

        await Eventually.TrueAsync(() => loop.Calls > 2 * Rounds, $"b's loop fails every other round, {2 * Rounds} rounds", s_deadline);
        var lines = UnexpectedLines(loop);
        Assert.True(lines.Count == 1, $"{Rounds} failures of the loop between rounds without one within the interval, one line expected: [{string.Join(" | ", lines)}]");

        clock.Advance(TimeSpan.FromSeconds(10));
        await Eventually.TrueAsync(() => UnexpectedLines(loop).Count >= 2, "b logs the failure again once the interval is over", s_deadline);
        var calls = loop.Calls;
        lines = UnexpectedLines(loop);
        // The clock's jump makes the failure look quiet for an interval: a round without one may count it first.
        var count = HeldBackOrQuietCount().Match(lines[1]);
        Assert.True(count.Success, $"the second line does not count the failures not logged: {lines[1]}");
        Assert.InRange(int.Parse(count.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), Rounds - 1, calls);
    }

    [Fact]
    public async Task Failures_with_two_messages_that_alternate_are_each_logged_once_per_interval()
    {
        using var dir = new TempDirectory();
        var loop = new FailingLoop(n => n % 2 == 1 ? "journal 'orders' is damaged" : "the open of 'orders' was refused");
        await using var node = await StartStandbyAsync(dir, loop, new ManualClock()); // never moved: the interval never ends

        await Eventually.TrueAsync(() => loop.Calls > 2 * Rounds, $"b's loop fails {2 * Rounds} rounds, the two messages in turn", s_deadline);
        var lines = UnexpectedLines(loop);
        Assert.True(lines.Count == 2, $"two messages in turn within the interval, one line each expected: [{string.Join(" | ", lines)}]");
        Assert.Single(lines, l => l.EndsWith("journal 'orders' is damaged", StringComparison.Ordinal));
        Assert.Single(lines, l => l.EndsWith("the open of 'orders' was refused", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_failure_not_seen_for_an_interval_has_its_count_logged_and_is_logged_at_once_when_it_returns()
    {
        using var dir = new TempDirectory();
        var clock = new ManualClock();
        var failing = 1;
        var loop = new FailingLoop(_ => Volatile.Read(ref failing) == 1 ? "the open of 'orders' was refused" : null);
        await using var node = await StartStandbyAsync(dir, loop, clock);

        await Eventually.TrueAsync(() => loop.Calls > Rounds, $"b's loop fails {Rounds} rounds", s_deadline);
        Volatile.Write(ref failing, 0);
        var before = loop.Calls;
        await Eventually.TrueAsync(() => loop.Calls > before + 2, "b's loop goes through rounds without a failure", s_deadline);
        Assert.Single(UnexpectedLines(loop));

        clock.Advance(TimeSpan.FromSeconds(10));
        await Eventually.TrueAsync(
            () => UnexpectedLines(loop).Any(l => l.EndsWith("not logged; no longer repeating)", StringComparison.Ordinal)),
            "b logs the count of the failures not logged once a whole interval went by without one",
            s_deadline);
        Volatile.Write(ref failing, 1);
        await Eventually.TrueAsync(
            () => UnexpectedLines(loop).Count(l => l.EndsWith("the open of 'orders' was refused", StringComparison.Ordinal)) == 2,
            "b logs the failure at once when it returns",
            s_deadline);
        var lines = UnexpectedLines(loop);
        Assert.True(lines.Count == 3, $"the first line, the count, the failure again: [{string.Join(" | ", lines)}]");
        Assert.Contains(lines, l => l.Contains("the open of 'orders' was refused (and ", StringComparison.Ordinal));
    }

    private static List<string> UnexpectedLines(FailingLoop loop) => loop.Log.Where(l => l.Contains(Unexpected, StringComparison.Ordinal)).ToList();

    [GeneratedRegex(@"\(and (\d+) more like it since the last such line, not logged\)$")]
    private static partial Regex HeldBackCount();

    [GeneratedRegex(@"\(and (\d+) more like it since the last such line, not logged(?:; no longer repeating)?\)$")]
    private static partial Regex HeldBackOrQuietCount();

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

    /// <summary>The LinkEnded hook: after the n-th link attempt (from 1) throws the message <c>failure(n)</c>, if any.</summary>
    private sealed class FailingLoop(Func<int, string?> failure)
    {
        private int _calls;

        public FailingLoop(string message)
            : this(_ => message)
        {
        }

        public System.Collections.Concurrent.ConcurrentQueue<string> Log { get; } = new();

        /// <summary>Rounds of the loop that reached the hook.</summary>
        public int Calls => Volatile.Read(ref _calls);

        public void LinkEnded(string why)
        {
            if (failure(Interlocked.Increment(ref _calls)) is { } message)
            {
                throw new InvalidOperationException(message);
            }
        }
    }
}
