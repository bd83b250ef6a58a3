using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using FastBroker.Replication;
using FastBroker.Replication.Internal;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A standby reconnects to its peer every round of its loop (50 ms and a probe apart), and a peer can end every link the
/// same way: one that refuses it at a newer epoch, one that welcomes it and then closes the link, or one whose reason
/// alternates. The standby's reason line (<c>standby: refused by …</c>, <c>standby: link down: …</c>) is written at once
/// for each reason, then at most once per 10 s with the count of those not logged; another reason at once. A stand-in
/// peer on 127.0.0.1 answers each HELLO as the test says (and each probe with nothing), and a log clock the test moves
/// by hand.
/// </summary>
public sealed partial class StandbyLinkLogTests
{
    /// <summary>Link attempts a test lets end before it counts the lines.</summary>
    private const int Rounds = 20;

    private const string RefusedNewer = "standby: refused by ";
    private const string ClosedAfterWelcome = "standby: link down: the primary closed the connection";

    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_peer_that_refuses_at_a_newer_epoch_every_round_is_logged_once_then_once_per_interval()
    {
        using var dir = new TempDirectory();
        var clock = new ManualClock();
        using var peer = new StandInPeer(_ => Answer.RefuseAtNewerEpoch);
        var lines = new ConcurrentQueue<string>();
        await using var node = await StartStandbyAsync(dir, peer, clock, lines);

        await WaitForAttemptsAsync(node, Rounds);
        var logged = Lines(lines, RefusedNewer);
        Assert.True(logged.Count == 1, $"{node.LinkAttempts} refusals at a newer epoch within the interval, one line expected: [{string.Join(" | ", logged)}]");

        var before = node.LinkAttempts;
        clock.Advance(TimeSpan.FromSeconds(10));
        await Eventually.TrueAsync(() => Lines(lines, RefusedNewer).Count >= 2, "b logs the refusal again once the interval is over", s_deadline);
        logged = Lines(lines, RefusedNewer);
        var count = HeldBackCount().Match(logged[1]);
        Assert.True(count.Success, $"the second line does not count the refusals not logged: {logged[1]}");
        Assert.InRange(long.Parse(count.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), Rounds - 1, before + 5);
    }

    [Fact]
    public async Task A_primary_that_welcomes_and_closes_every_round_is_logged_once_per_interval_and_a_new_reason_at_once()
    {
        using var dir = new TempDirectory();
        var answer = (int)Answer.WelcomeAndClose;
        using var peer = new StandInPeer(_ => (Answer)Volatile.Read(ref answer));
        var lines = new ConcurrentQueue<string>();
        await using var node = await StartStandbyAsync(dir, peer, new ManualClock(), lines); // never moved: the interval never ends

        await WaitForAttemptsAsync(node, Rounds);
        var logged = Lines(lines, ClosedAfterWelcome);
        Assert.True(logged.Count == 1, $"{node.LinkAttempts} links followed and closed within the interval, one line expected: [{string.Join(" | ", logged)}]");

        Volatile.Write(ref answer, (int)Answer.RefuseAtNewerEpoch);
        await Eventually.TrueAsync(() => Lines(lines, RefusedNewer).Count == 1, "b logs another reason at once", s_deadline);
        Volatile.Write(ref answer, (int)Answer.WelcomeAndClose);
        await WaitForAttemptsAsync(node, node.LinkAttempts + Rounds);
        Assert.True(Lines(lines, ClosedAfterWelcome).Count == 1, $"the first reason again within the interval, not logged again: [{string.Join(" | ", lines)}]");
        Assert.Single(Lines(lines, RefusedNewer));
    }

    [Fact]
    public async Task Reasons_that_alternate_round_by_round_are_each_logged_once_per_interval()
    {
        using var dir = new TempDirectory();
        using var peer = new StandInPeer(n => n % 2 == 0 ? Answer.WelcomeAndClose : Answer.RefuseAtNewerEpoch);
        var lines = new ConcurrentQueue<string>();
        await using var node = await StartStandbyAsync(dir, peer, new ManualClock(), lines);

        await WaitForAttemptsAsync(node, 2 * Rounds);
        var logged = Lines(lines, "standby: ");
        Assert.True(
            logged.Count == 2,
            $"{node.LinkAttempts} attempts whose two reasons alternate within the interval, one line each expected: [{string.Join(" | ", logged)}]");
    }

    private static async Task WaitForAttemptsAsync(ReplicatedNode node, long attempts) =>
        await Eventually.TrueAsync(() => node.LinkAttempts >= attempts, $"b ends {attempts} link attempts", s_deadline);

    private static List<string> Lines(ConcurrentQueue<string> lines, string reason) =>
        [.. lines.Where(l => l.Contains(reason, StringComparison.Ordinal))];

    [GeneratedRegex(@"\(and (\d+) more like it since the last such line, not logged\)$")]
    private static partial Regex HeldBackCount();

    private static async Task<ReplicatedNode> StartStandbyAsync(TempDirectory dir, StandInPeer peer, TimeProvider clock, ConcurrentQueue<string> lines)
    {
        var node = await ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, new ReplicationOptions
        {
            NodeId = "b",
            DataDirectory = dir.Combine("b"),
            Port = FreePort.Next(),
            Peer = peer.Endpoint.ToString(),
            InitialRole = NodeRole.Standby,
            Log = lines.Enqueue,
            LogClock = clock,
        });
        if (!await node.WaitForRoleAsync(NodeRole.Standby, TimeSpan.FromSeconds(30)))
        {
            await node.DisposeAsync();
            Assert.Fail($"b becomes standby:\n{string.Join('\n', lines)}");
        }

        return node;
    }

    private enum Answer
    {
        /// <summary>REFUSE as a standby at epoch 7, newer than b's (a peer at a newer epoch that is not primary).</summary>
        RefuseAtNewerEpoch,

        /// <summary>WELCOME at epoch 1, then the connection closed (a primary that ends every link it accepts).</summary>
        WelcomeAndClose,
    }

    /// <summary>
    /// A peer that answers the n-th HELLO (from 0) as <c>answer(n)</c> and closes each probe unanswered. It reads what
    /// the standby sends until the standby closes, so that its close is orderly (never a reset for unread bytes).
    /// </summary>
    private sealed class StandInPeer : IDisposable
    {
        private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        private readonly Func<int, Answer> _answer;
        private readonly Thread _thread;
        private int _hellos;

        public StandInPeer(Func<int, Answer> answer)
        {
            _answer = answer;
            _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            _listener.Listen(16);
            _thread = new Thread(Accept) { IsBackground = true, Name = "stand-in peer" };
            _thread.Start();
        }

        public IPEndPoint Endpoint => (IPEndPoint)_listener.LocalEndPoint!;

        public void Dispose()
        {
            _listener.Dispose();
            _thread.Join(TimeSpan.FromSeconds(10));
        }

        private void Accept()
        {
            while (true)
            {
                Socket connection;
                try
                {
                    connection = _listener.Accept();
                }
                catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
                {
                    return;
                }

                ThreadPool.UnsafeQueueUserWorkItem(Serve, connection, preferLocal: false);
            }
        }

        private void Serve(Socket connection)
        {
            using (connection)
            {
                try
                {
                    connection.ReceiveTimeout = 10_000;
                    var head = new byte[5];
                    for (var read = 0; read < head.Length;)
                    {
                        var n = connection.Receive(head, read, head.Length - read, SocketFlags.None);
                        if (n == 0)
                        {
                            return;
                        }

                        read += n;
                    }

                    if ((FrameKind)head[4] == FrameKind.Hello)
                    {
                        var f = new FrameBuffer(256);
                        if (_answer(Interlocked.Increment(ref _hellos) - 1) == Answer.RefuseAtNewerEpoch)
                        {
                            f.Begin(FrameKind.Refuse).I64(7).U8((byte)NodeRole.Standby).Str("node 'a' is Standby, not primary").End();
                        }
                        else
                        {
                            f.Begin(FrameKind.Welcome).I64(1).Str("stand-in").Str("1 #stand-in@0\n").U32(0).End();
                        }

                        f.SendTo(connection);
                    }

                    connection.Shutdown(SocketShutdown.Send);
                    var rest = new byte[4096];
                    while (connection.Receive(rest) > 0)
                    {
                    }
                }
                catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
                {
                }
            }
        }
    }
}
