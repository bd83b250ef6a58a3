using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using FastBroker.Replication;
using FastBroker.Replication.Internal;
using FastBroker.Server;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A manual promotion does not wait for whatever the standby's loop is waiting on: its pause between two attempts to
/// follow its (gone) primary (half a heartbeat interval: with a 60 s interval a promotion that waited for it took
/// 30 s), its pause after an unexpected failure (a heartbeat interval), or a connect to its primary under way (1 s; the
/// tests raise each to 30 s or more). In-process nodes on 127.0.0.1, no witness.
/// </summary>
public sealed class ManualPromotionWakeTests(ITestOutputHelper output)
{
    private static readonly TimeSpan s_interval = TimeSpan.FromSeconds(60);

    /// <summary>Far below the 30 s pause, far above a promotion (open the journals, start the server) on a loaded machine.</summary>
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task A_promotion_asked_while_the_standby_pauses_between_link_attempts_does_not_wait_for_the_pause()
    {
        using var dir = new TempDirectory();
        var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var (a, b) = await InProcessPair.StartAsync(dir, BrokerOptions.Default, o => o with
        {
            HeartbeatInterval = s_interval,
            HeartbeatTimeout = s_interval * 2,
            Log = lines.Enqueue,
        });
        await using (a)
        await using (b)
        {
            await a.Broker!.PublishAsync("wake.orders", "m0"u8.ToArray());
            await Eventually.TrueAsync(() => NodeStatus.Parse(a.GetStatusJson()).StandbyCaughtUp("wake.orders"), "b follows a and holds its message", TimeSpan.FromSeconds(30));
            var epoch = a.Epoch;

            // The primary goes; b's link ends (one attempt counted), and b pauses before the next attempt.
            await a.DisposeAsync();
            await Eventually.TrueAsync(() => b.LinkAttempts >= 1, "b's link to the stopped primary ends", TimeSpan.FromSeconds(30));

            var promoting = Stopwatch.StartNew();
            var promotion = b.PromoteAsync();
            var first = await Task.WhenAny(promotion, Task.Delay(s_deadline));
            Assert.True(
                first == promotion,
                $"PromoteAsync did not complete within {s_deadline.TotalSeconds:0} s (the standby's pause between link attempts is {(s_interval / 2).TotalSeconds:0} s):\n{string.Join('\n', lines)}");
            Assert.True(await promotion > epoch, $"the new epoch must be above {epoch}");
            Assert.Equal(NodeRole.Primary, b.Role);
            Assert.NotNull(b.Server);
            output.WriteLine($"promoted in {promoting.ElapsedMilliseconds} ms with a {s_interval.TotalSeconds:0} s heartbeat interval");
        }
    }

    [Fact]
    public async Task A_promotion_asked_while_the_standby_pauses_after_an_unexpected_failure_does_not_wait_for_the_pause()
    {
        // The peer is down (its connects are refused), and after every link attempt the standby's loop fails
        // unexpectedly (the tests' LinkEnded hook throws): its supervisor pauses a heartbeat interval (60 s) before the
        // next try. A malformed WELCOME, which did this once, is an ordinary link failure now (MalformedPeerFrameTests).
        using var dir = new TempDirectory();
        var lines = new ConcurrentQueue<string>();
        await using var node = await StartStandbyAsync(dir, RefusedEndPoint(), lines, o => o with
        {
            HeartbeatInterval = s_interval,
            HeartbeatTimeout = s_interval * 2,
            LinkEnded = why => throw new InvalidOperationException($"the test's stand-in for an unexpected failure after: {why}"),
        });
        await Eventually.TrueAsync(
            () => lines.Any(l => l.Contains("unexpected InvalidOperationException in role Standby", StringComparison.Ordinal)),
            "the standby's loop fails with an unexpected exception",
            TimeSpan.FromSeconds(30));

        await AssertPromotedWithinDeadlineAsync(node, lines, $"the standby's pause after an unexpected failure is {s_interval.TotalSeconds:0} s");
    }

    [Fact]
    public async Task A_promotion_asked_while_the_standby_connects_to_its_primary_does_not_wait_for_the_connect()
    {
        // A listener whose backlog is full and who accepts nothing: the standby's connect to it hangs (its SYNs are
        // dropped) until the connect timeout, raised from 1 s to 60 s.
        using var dir = new TempDirectory();
        using var listener = Listen(0);
        var filled = await FillBacklogAsync(listener);
        try
        {
            var lines = new ConcurrentQueue<string>();
            await using var node = await StartStandbyAsync(dir, (IPEndPoint)listener.LocalEndPoint!, lines, o => o with { ConnectTimeout = s_interval, HeartbeatTimeout = s_interval }); // a connect timeout is at most four heartbeat timeouts
            await Eventually.TrueAsync(() => node.Replica is { ConnectsBegun: >= 1 }, "the standby connects to its primary", TimeSpan.FromSeconds(30));
            Assert.Equal(0, node.LinkAttempts); // the connect is under way: no link attempt has ended

            await AssertPromotedWithinDeadlineAsync(node, lines, $"the standby's connect to its primary waits up to {s_interval.TotalSeconds:0} s");
        }
        finally
        {
            filled.ForEach(s => s.Dispose());
        }
    }

    private async Task AssertPromotedWithinDeadlineAsync(ReplicatedNode node, ConcurrentQueue<string> lines, string delay)
    {
        var epoch = node.Epoch;
        var promoting = Stopwatch.StartNew();
        var promotion = node.PromoteAsync();
        var first = await Task.WhenAny(promotion, Task.Delay(s_deadline));
        Assert.True(first == promotion, $"PromoteAsync did not complete within {s_deadline.TotalSeconds:0} s ({delay}):\n{string.Join('\n', lines)}");
        Assert.True(await promotion > epoch, $"the new epoch must be above {epoch}");
        Assert.Equal(NodeRole.Primary, node.Role);
        Assert.NotNull(node.Server);
        output.WriteLine($"promoted in {promoting.ElapsedMilliseconds} ms ({delay})");
    }

    /// <summary>A standby "b" without witness whose peer is <paramref name="peer"/>, once it has taken the standby role.</summary>
    private static async Task<ReplicatedNode> StartStandbyAsync(TempDirectory dir, IPEndPoint peer, ConcurrentQueue<string> lines, Func<ReplicationOptions, ReplicationOptions> configure)
    {
        var node = await ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, configure(new ReplicationOptions
        {
            NodeId = "b",
            DataDirectory = dir.Combine("b"),
            Port = FreePort.Next(),
            Peer = peer.ToString(),
            InitialRole = NodeRole.Standby,
            Log = lines.Enqueue,
        }));
        if (!await node.WaitForRoleAsync(NodeRole.Standby, TimeSpan.FromSeconds(30)))
        {
            await node.DisposeAsync();
            Assert.Fail($"b becomes standby:\n{string.Join('\n', lines)}");
        }

        return node;
    }

    /// <summary>An endpoint on 127.0.0.1 where nothing listens (a listener bound and closed): connects are refused.</summary>
    private static IPEndPoint RefusedEndPoint()
    {
        using var listener = Listen(1);
        return (IPEndPoint)listener.LocalEndPoint!;
    }

    private static Socket Listen(int backlog)
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(backlog);
        return listener;
    }

    /// <summary>Connects to <paramref name="listener"/> (backlog 0, never accepting) until a connect times out: its queue is full.</summary>
    private static async Task<List<Socket>> FillBacklogAsync(Socket listener)
    {
        var filled = new List<Socket>();
        for (var i = 0; i < 8; i++)
        {
            try
            {
                filled.Add(await Task.Run(() => Wire.Connect(listener.LocalEndPoint!, TimeSpan.FromMilliseconds(300))).WaitAsync(TimeSpan.FromSeconds(60)));
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.TimedOut)
            {
                return filled;
            }
        }

        filled.ForEach(s => s.Dispose());
        throw new InvalidOperationException("every connect succeeded: the backlog never filled");
    }
}
