using System.Net.Sockets;
using FastBroker.Replication;
using FastBroker.Replication.Internal;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>A stand-in standby 'b' on a real socket: the link tests drive the primary's side of the link by hand.</summary>
internal static class StandInStandby
{
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
}
