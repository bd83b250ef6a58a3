using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using FastBroker.Engine;
using FastBroker.Replication;
using FastBroker.Replication.Internal;
using FastBroker.Server;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A frame from the peer that does not parse is a protocol error of that link or probe, never an unexpected failure
/// of the standby, and changes nothing on it. A malformed WELCOME was parsed while it was applied: the topic cuts it
/// listed were made, then the epoch history was cleared and its parse threw (FormatException out of
/// <c>StandbyReplica.Run</c>), leaving the standby with an empty or partial history, which fencing and the divergence
/// check read; a directive's topic name was not checked, so "../x" deleted a directory outside the topics. In-process
/// nodes on 127.0.0.1, no witness; between the standby "b" and its primary "a" a stand-in that forwards each
/// connection, or answers it with the malformed WELCOME while the test says so.
/// </summary>
public sealed class MalformedPeerFrameTests(ITestOutputHelper output)
{
    private const string Topic = "malformed.orders";

    [Theory]
    [InlineData("history")]
    [InlineData("directive")]
    public async Task A_malformed_WELCOME_changes_nothing_on_the_standby_which_follows_a_good_primary_after(string malformed)
    {
        using var dir = new TempDirectory();
        var lines = new ConcurrentQueue<string>();
        SwitchingPeer? peer = null;
        var (a, b) = await InProcessPair.StartAsync(
            dir,
            BrokerOptions.Default,
            o => o with { HeartbeatInterval = TimeSpan.FromMilliseconds(200), HeartbeatTimeout = TimeSpan.FromSeconds(10), Log = lines.Enqueue },
            port =>
            {
                peer?.Dispose();
                peer = new SwitchingPeer(port);
                return peer.Endpoint;
            });
        using (peer)
        await using (a)
        await using (b)
        {
            for (var i = 0; i < 10; i++)
            {
                await a.Broker!.PublishAsync(Topic, new byte[] { (byte)i });
            }

            await Eventually.TrueAsync(() => NodeStatus.Parse(a.GetStatusJson()).StandbyCaughtUp(Topic), "b follows a and holds its 10 messages", TimeSpan.FromSeconds(30));
            var statePath = Path.Combine(dir.Combine("b"), "replication", "node.state");
            var (history, state, epoch) = (b.EpochHistory, File.ReadAllText(statePath), b.Epoch);
            Assert.Contains("#a@0", history, StringComparison.Ordinal);
            var victim = Directory.CreateDirectory(Path.Combine(dir.Combine("b"), "victim")).FullName;
            File.WriteAllText(Path.Combine(victim, "keep.txt"), "not the standby's to delete");

            // A newer epoch that cuts b's copy to nothing, with a history whose second line does not parse; or a
            // history that parses and a directive that names a directory outside the topics.
            var welcome = new FrameBuffer(256);
            welcome.Begin(FrameKind.Welcome).I64(epoch + 1).Str("stand-in");
            if (malformed == "history")
            {
                welcome.Str($"{epoch + 1} #stand-in@0 {Topic}@0\nnot-a-history\n").U32(1).Str(Topic).U8((byte)TopicAction.Truncate).I64(0);
            }
            else
            {
                welcome.Str($"{epoch + 1} #stand-in@0 {Topic}@0\n").U32(1).Str("../victim").U8((byte)TopicAction.Delete).I64(0);
            }

            welcome.End();
            peer!.Welcome = welcome.Written.ToArray();
            var attempts = b.LinkAttempts;
            peer.CutAll();
            // Until b has said what it made of the WELCOME (or failed on it): a count of link attempts is no sign, since an
            // attempt that found the stand-in not yet answering also counts, and the next one may still be reading the
            // WELCOME when the count moves (CI failed so: the log had no "malformed WELCOME" line yet).
            await Eventually.TrueAsync(
                () => lines.Any(l => l.Contains("malformed WELCOME from the primary", StringComparison.Ordinal) || l.Contains("node 'b': unexpected", StringComparison.Ordinal)),
                $"b's link ends and b tries the stand-in's malformed WELCOME (link attempts {attempts} before, {b.LinkAttempts} now)",
                TimeSpan.FromSeconds(30));

            Assert.Equal(history, b.EpochHistory);
            Assert.Equal(state, File.ReadAllText(statePath));
            Assert.Equal(epoch, b.Epoch);
            Assert.Equal(NodeRole.Standby, b.Role);
            Assert.True(File.Exists(Path.Combine(victim, "keep.txt")), "the directory outside the topics is still there");
            Assert.Equal(10, b.Replica?.JournalOf(Topic)?.NextOffset);
            var log = string.Join('\n', lines);
            Assert.DoesNotContain("node 'b': unexpected", log, StringComparison.Ordinal);
            Assert.Contains($"malformed WELCOME from the primary at {peer.Endpoint} ('stand-in')", log, StringComparison.Ordinal);
            output.WriteLine(lines.First(l => l.Contains("malformed WELCOME", StringComparison.Ordinal)));

            // The good primary again: b follows it and copies what it publishes.
            peer.Welcome = null;
            await a.Broker!.PublishAsync(Topic, new byte[] { 10 });
            await Eventually.TrueAsync(() => NodeStatus.Parse(a.GetStatusJson()).StandbyCaughtUp(Topic), $"b follows a again and holds its 11 messages:\n{string.Join('\n', lines)}", TimeSpan.FromSeconds(30));
            Assert.Equal(11, b.Replica?.JournalOf(Topic)?.NextOffset);
            Assert.Equal(a.Epoch, b.Epoch);
            Assert.Equal(history, b.EpochHistory);
        }
    }

    [Fact]
    public async Task A_HELLO_whose_epoch_history_does_not_parse_is_refused_and_the_primary_serves_on()
    {
        // The replicator's own thread parsed the history (to compute the cuts): the exception ended the test host.
        using var dir = new TempDirectory();
        var lines = new ConcurrentQueue<string>();
        var node = await StandInStandby.StartPrimaryAsync(dir, lines);
        await using (node)
        {
            Assert.True(await node.WaitForRoleAsync(NodeRole.Primary, TimeSpan.FromSeconds(30)), $"a becomes primary:\n{string.Join('\n', lines)}");
            await node.Broker!.PublishAsync(Topic, new byte[] { 1 });
            using var socket = Wire.Connect(node.ReplicationEndPoint, TimeSpan.FromSeconds(10));
            socket.ReceiveTimeout = 30_000;
            var hello = new FrameBuffer(256);
            new Hello("intruder", 0, [(Topic, 0, 1, 1)], "1 #a@0\nnot-a-history\n").Write(hello);
            hello.SendTo(socket);
            var input = new FrameInput(socket, 4096);
            Assert.False(input.Read(out _, out _), "a answers the malformed HELLO by closing the connection");
            Assert.Equal(NodeRole.Primary, node.Role);
            await node.Broker!.PublishAsync(Topic, new byte[] { 2 });
            Assert.DoesNotContain(lines, l => l.Contains("unexpected", StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task A_probe_answered_with_a_malformed_STATUS_counts_as_no_answer()
    {
        // The stand-in answers every probe with a STATUS whose head count (2^31) the frame does not hold; it closes
        // every other connection. The count was taken as a capacity: ArgumentOutOfRangeException out of the probe.
        using var dir = new TempDirectory();
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(16);
        var standIn = Task.Run(() => AnswerProbes(listener));
        var lines = new ConcurrentQueue<string>();
        var node = await ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, new ReplicationOptions
        {
            NodeId = "b",
            DataDirectory = dir.Combine("b"),
            Port = FreePort.Next(),
            Peer = ((IPEndPoint)listener.LocalEndPoint!).ToString(),
            InitialRole = NodeRole.Standby,
            Log = lines.Enqueue,
        });
        await using (node)
        {
            Assert.True(await node.WaitForRoleAsync(NodeRole.Standby, TimeSpan.FromSeconds(30)), $"b becomes standby:\n{string.Join('\n', lines)}");
            await Eventually.TrueAsync(() => node.LinkAttempts >= 3, "b tries its peer (and probes it after each try)", TimeSpan.FromSeconds(30));
            Assert.DoesNotContain(lines, l => l.Contains("unexpected", StringComparison.Ordinal));
        }

        listener.Dispose();
        await standIn;
    }

    [Fact]
    public async Task A_TOPIC_frame_whose_settings_overflow_is_a_protocol_error_of_the_link_and_creates_nothing()
    {
        // A stand-in primary welcomes b, then announces a topic whose retention age (2^63 - 1 ms) no TimeSpan holds.
        // ParseMeta threw ArgumentOutOfRangeException ("TimeSpan overflowed") out of the standby's loop.
        using var dir = new TempDirectory();
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(16);
        var frames = new FrameBuffer(1024);
        frames.Begin(FrameKind.Welcome).I64(1).Str("stand-in").Str("1 #stand-in@0\n").U32(0).End();
        var meta = TopicRegistry.FormatMeta(TopicOptions.Default) + "retentionAgeMs=9223372036854775807\n";
        frames.Begin(FrameKind.Topic).U32(0).Str(Topic).Str(meta).I64(0).End();
        var standIn = Task.Run(() => Welcome(listener, frames.Written.ToArray()));
        var lines = new ConcurrentQueue<string>();
        var node = await ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, new ReplicationOptions
        {
            NodeId = "b",
            DataDirectory = dir.Combine("b"),
            Port = FreePort.Next(),
            Peer = ((IPEndPoint)listener.LocalEndPoint!).ToString(),
            InitialRole = NodeRole.Standby,
            Log = lines.Enqueue,
        });
        await using (node)
        {
            Assert.True(await node.WaitForRoleAsync(NodeRole.Standby, TimeSpan.FromSeconds(30)), $"b becomes standby:\n{string.Join('\n', lines)}");
            await Eventually.TrueAsync(
                () => node.LinkAttempts >= 3 || lines.Any(l => l.Contains("unexpected", StringComparison.Ordinal)),
                "b follows the stand-in, is sent the topic, and tries again",
                TimeSpan.FromSeconds(30));
            var log = string.Join('\n', lines);
            Assert.DoesNotContain("unexpected", log, StringComparison.Ordinal);
            Assert.Contains($"standby: link down: topic '{Topic}' from the primary: its topic.meta has a value for 'retentionAgeMs' out of range: '9223372036854775807'", log, StringComparison.Ordinal);
            output.WriteLine(lines.First(l => l.Contains("retentionAgeMs", StringComparison.Ordinal)));
            Assert.Equal(NodeRole.Standby, node.Role);
            Assert.False(Directory.Exists(Path.Combine(dir.Combine("b"), "topics", Topic)), "no directory for the topic whose settings were refused");
        }

        listener.Dispose();
        await standIn;
    }

    /// <summary>Sends each connection <paramref name="frames"/> and keeps it open until the standby closes it.</summary>
    private static void Welcome(Socket listener, byte[] frames)
    {
        var open = new List<Socket>();
        try
        {
            while (true)
            {
                Socket connection;
                try
                {
                    connection = listener.Accept();
                }
                catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
                {
                    return;
                }

                open.Add(connection);
                try
                {
                    connection.Send(frames);
                }
                catch (SocketException)
                {
                }
            }
        }
        finally
        {
            foreach (var s in open)
            {
                s.Dispose();
            }
        }
    }

    private static void AnswerProbes(Socket listener)
    {
        while (true)
        {
            Socket connection;
            try
            {
                connection = listener.Accept();
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                return;
            }

            using (connection)
            {
                try
                {
                    var header = new byte[5];
                    connection.ReceiveTimeout = 5000;
                    if (!ReceiveAll(connection, header) || (FrameKind)header[4] != FrameKind.Probe)
                    {
                        continue;
                    }

                    var body = new byte[BinaryPrimitives.ReadUInt32LittleEndian(header) - 1];
                    ReceiveAll(connection, body);
                    var status = new FrameBuffer(64);
                    status.Begin(FrameKind.Status).U8((byte)NodeRole.Standby).I64(0).Str("stand-in").U8(1).U32(1u << 31).End();
                    status.SendTo(connection);
                }
                catch (SocketException)
                {
                }
            }
        }
    }

    private static bool ReceiveAll(Socket socket, byte[] buffer)
    {
        for (var at = 0; at < buffer.Length;)
        {
            var n = socket.Receive(buffer.AsSpan(at));
            if (n == 0)
            {
                return false;
            }

            at += n;
        }

        return true;
    }

    /// <summary>
    /// b's peer: forwards every connection to the primary's replication port, or, while <see cref="Welcome"/> is set,
    /// answers it with that frame (and keeps it open until b closes it).
    /// </summary>
    private sealed class SwitchingPeer : IDisposable
    {
        private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        private readonly int _target;
        private readonly ConcurrentDictionary<Socket, bool> _open = new();
        private readonly Thread _acceptor;

        public SwitchingPeer(int targetPort)
        {
            _target = targetPort;
            _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            _listener.Listen(16);
            _acceptor = new Thread(Accept) { IsBackground = true, Name = "switching peer" };
            _acceptor.Start();
        }

        public string Endpoint => ((IPEndPoint)_listener.LocalEndPoint!).ToString();

        public volatile byte[]? Welcome;

        /// <summary>Ends every connection open now.</summary>
        public void CutAll()
        {
            foreach (var s in _open.Keys)
            {
                s.Dispose();
            }
        }

        public void Dispose()
        {
            _listener.Dispose();
            _acceptor.Join();
            CutAll();
        }

        private void Accept()
        {
            while (true)
            {
                Socket client;
                try
                {
                    client = _listener.Accept();
                }
                catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
                {
                    return;
                }

                _open[client] = true;
                if (Welcome is { } welcome)
                {
                    try
                    {
                        client.Send(welcome);
                    }
                    catch (SocketException)
                    {
                    }

                    continue;
                }

                var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    server.Connect(IPAddress.Loopback, _target);
                }
                catch (SocketException)
                {
                    server.Dispose();
                    client.Dispose();
                    continue;
                }

                _open[server] = true;
                _ = Task.Run(() => Pump(client, server));
                _ = Task.Run(() => Pump(server, client));
            }
        }

        private static async Task Pump(Socket from, Socket to)
        {
            var buffer = new byte[64 << 10];
            try
            {
                int n;
                while ((n = await from.ReceiveAsync(buffer, SocketFlags.None)) > 0)
                {
                    await to.SendAsync(buffer.AsMemory(0, n), SocketFlags.None);
                }
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
            }
            finally
            {
                from.Dispose();
                to.Dispose();
            }
        }
    }
}
