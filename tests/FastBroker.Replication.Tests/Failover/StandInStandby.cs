using System.Collections.Concurrent;
using System.Net.Sockets;
using FastBroker.Replication;
using FastBroker.Replication.Internal;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>A stand-in standby 'b' on a real socket: the link tests drive the primary's side of the link by hand.</summary>
internal static class StandInStandby
{
    /// <summary>
    /// How long the ack reader leaves arrived frames to the journaler (journalerReads). The journaler polls for them for
    /// at most 1 s (AckPoll's most) after a batch and reads a frame that comes meanwhile within one Thread.Yield, so 5 s
    /// is well past its window; a frame that comes after the window (a loaded machine) waits out the whole deferral and is
    /// then read by the ack reader (which ends the link the same way): 30 s made each such run take 30 s. The tests wait
    /// for a link's end well past it (60 s).
    /// </summary>
    public static readonly TimeSpan JournalerDeferral = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Starts the primary 'a' under <paramref name="dir"/> ("a"), logging to <paramref name="lines"/>, with a peer
    /// nothing listens on: only a stand-in (a test's own socket) connects to its replication port. Its heartbeat
    /// timeout is 5 s (its silence limit for a standby 20 s: a stand-in answers no heartbeat unless its test says so).
    /// <paramref name="journalerReads"/> null: the default topic options (confirmed locally). Otherwise the topics are
    /// standby-received, a publish held for an ACK stays held for 10 minutes (the whole test), and the standby's
    /// frames after the attach are read by the ack reader (false: it reads every ACK, no polling) or by the journaler
    /// (true: it polls for 1 s after each batch, and the ack reader leaves arrived frames to it for <see cref="JournalerDeferral"/>).
    /// <paramref name="degradeToLocal"/>: <see cref="ReplicationOptions.DegradeToLocal"/>; <paramref name="logClock"/>:
    /// the clock of the log's repeat limiter (the system's when null).
    /// </summary>
    public static Task<ReplicatedNode> StartPrimaryAsync(
        TempDirectory dir, ConcurrentQueue<string> lines, bool? journalerReads = null, bool degradeToLocal = false, TimeProvider? logClock = null)
    {
        var brokerOptions = journalerReads is null
            ? BrokerOptions.Default
            : BrokerOptions.Default with { DefaultTopicOptions = TopicOptions.Default with { Acks = AckMode.StandbyReceived } };
        var options = new ReplicationOptions
        {
            NodeId = "a",
            InitialRole = NodeRole.Primary,
            DataDirectory = dir.Combine("a"),
            Port = FreePort.Next(),
            Peer = Cli.Address(FreePort.Next()), // nothing listens there
            HeartbeatTimeout = TimeSpan.FromSeconds(5),
            DegradeToLocal = degradeToLocal,
            Log = lines.Enqueue,
            LogClock = logClock ?? TimeProvider.System,
        };
        if (journalerReads is { } journaler)
        {
            options = options with
            {
                AckTimeout = TimeSpan.FromMinutes(10),
                AckPoll = journaler ? TimeSpan.FromSeconds(1) : TimeSpan.Zero,
                AckReaderDefersFor = journaler ? JournalerDeferral : TimeSpan.Zero,
            };
        }

        return ReplicatedNode.StartAsync(brokerOptions, ServerOptions.Default with { Port = 0 }, options);
    }

    /// <summary>HELLO from 'b' (epoch 0, nothing held), STATE_DIGESTS (none), then every frame up to the POSITIONS that end the attach.</summary>
    public static Socket Attach(ReplicatedNode node, out FrameInput input)
    {
        var socket = Wire.Connect(node.ReplicationEndPoint, TimeSpan.FromSeconds(10));
        socket.ReceiveTimeout = 30_000;
        var f = new FrameBuffer(256);
        new Hello("b", 0, [], "").Write(f);
        f.SendTo(socket);
        input = new FrameInput(socket, 1 << 20);
        Assert.True(input.Read(out var welcome, out _) && welcome == FrameKind.Welcome, "a welcomes b");
        StateDigests.Write(f, []);
        f.SendTo(socket);
        FrameKind kind;
        while (input.Read(out kind, out _) && kind != FrameKind.Positions)
        {
        }

        Assert.Equal(FrameKind.Positions, kind);
        return socket;
    }

    /// <summary>
    /// Reads frames up to a RECORDS frame of <paramref name="topic"/> that ships offsets up to <paramref name="end"/>
    /// (0: the first one); returns the topic's link id (<paramref name="id"/> once known: its TOPIC frame came) and the
    /// end that frame shipped.
    /// </summary>
    public static (uint Id, long End) ReadUntilShipped(FrameInput input, string topic, uint? id, long end = 0)
    {
        while (true)
        {
            Assert.True(input.Read(out var kind, out var body), "a sends the records");
            var r = new FrameReader(body);
            if (kind == FrameKind.Topic)
            {
                var topicId = r.U32();
                if (r.Str() == topic)
                {
                    id = topicId;
                }
            }
            else if (kind == FrameKind.Records && id is { } known)
            {
                r.I64();
                if (r.U32() == known)
                {
                    var shipped = r.I64() + r.U32();
                    if (shipped >= end)
                    {
                        return (known, shipped);
                    }
                }
            }
        }
    }
}
