using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using FastBroker.Replication;
using FastBroker.Replication.Internal;

namespace FastBroker.ReplicationTests;

/// <summary>
/// A fake peer on the replication port for <see cref="EpochExhaustionTests"/>: answers PROBE with the STATUS of a
/// standby at epoch 0 that knows its heads (none) and defers to the node probing it, and refuses a HELLO (not primary).
/// A node at a later epoch holds more of the log than it, so without a witness that node would take over on its own.
/// </summary>
internal sealed class DeferringPeer : IDisposable
{
    private const byte StatusHeadsKnown = 1; // ReplicatedNode's STATUS flags
    private const byte StatusDefers = 2;
    private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly Thread _thread;
    private int _probes;

    public DeferringPeer()
    {
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(16);
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        _thread = new Thread(Serve) { IsBackground = true, Name = "deferring-peer" };
        _thread.Start();
    }

    public int Port { get; }

    /// <summary>How many PROBEs it answered (saying it defers).</summary>
    public int Probes => Volatile.Read(ref _probes);

    public void Dispose()
    {
        _listener.Dispose();
        _thread.Join(TimeSpan.FromSeconds(10));
    }

    private void Serve()
    {
        while (true)
        {
            Socket socket;
            try
            {
                socket = _listener.Accept();
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                return;
            }

            using (socket)
            {
                try
                {
                    Answer(socket);
                }
                catch (SocketException)
                {
                    // The node gave up on this connection: it tries again.
                }
            }
        }
    }

    private void Answer(Socket socket)
    {
        socket.ReceiveTimeout = 10_000;
        var header = new byte[5];
        ReceiveExactly(socket, header);
        ReceiveExactly(socket, new byte[BinaryPrimitives.ReadUInt32LittleEndian(header) - 1]);
        var f = new FrameBuffer(256);
        if ((FrameKind)header[4] == FrameKind.Probe)
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
    }

    private static void ReceiveExactly(Socket socket, byte[] buffer)
    {
        for (var read = 0; read < buffer.Length;)
        {
            var n = socket.Receive(buffer, read, buffer.Length - read, SocketFlags.None);
            if (n == 0)
            {
                throw new SocketException((int)SocketError.ConnectionReset);
            }

            read += n;
        }
    }
}
