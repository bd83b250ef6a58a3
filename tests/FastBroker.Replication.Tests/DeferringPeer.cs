using System.Net.Sockets;
using FastBroker.Replication;
using FastBroker.Replication.Internal;

namespace FastBroker.ReplicationTests;

/// <summary>
/// A fake peer on the replication port for <see cref="EpochExhaustionTests"/>: answers PROBE with the STATUS of a
/// standby at epoch 0 that knows its heads (none) and defers to the node probing it, and refuses a HELLO (not primary).
/// A node at a later epoch holds more of the log than it, so without a witness that node would take over on its own.
/// </summary>
internal sealed class DeferringPeer : LoopbackFake
{
    private const byte StatusHeadsKnown = 1; // ReplicatedNode's STATUS flags
    private const byte StatusDefers = 2;
    private int _probes;

    public DeferringPeer()
        : base("deferring-peer") => Start();

    /// <summary>How many PROBEs it answered (saying it defers).</summary>
    public int Probes => Volatile.Read(ref _probes);

    protected override bool Serve(Socket socket)
    {
        var (kind, _) = ReceiveFrame(socket);
        var f = new FrameBuffer(256);
        if (kind == FrameKind.Probe)
        {
            f.Begin(FrameKind.Status).U8((byte)NodeRole.Standby).I64(0).Str("b").U8(StatusHeadsKnown | StatusDefers).U32(0);
            Interlocked.Increment(ref _probes);
        }
        else
        {
            f.Begin(FrameKind.Refuse).I64(0).U8((byte)NodeRole.Standby).Str("node 'b' is Standby, not primary");
        }

        f.End();
        f.SendTo(socket);
        return true;
    }
}
