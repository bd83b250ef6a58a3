using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using FastBroker.Replication.Internal;

namespace FastBroker.ReplicationTests;

/// <summary>
/// A fake server on 127.0.0.1 standing in for a peer or a witness: one thread accepts connections one at a time and
/// hands each to <see cref="Serve"/> (the connection is closed after it; an I/O error on it only ends that connection,
/// as the node tries again). <see cref="Serve"/> returning false stops listening for good, as a node that died: the
/// node's connects are refused from then on, and <see cref="Stopped"/> is called. Disposing closes the listener and
/// waits for the thread.
/// </summary>
internal abstract class LoopbackFake : IDisposable
{
    private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly Thread _thread;

    protected LoopbackFake(string threadName)
    {
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(16);
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        _thread = new Thread(AcceptLoop) { IsBackground = true, Name = threadName };
    }

    public int Port { get; }

    public void Dispose()
    {
        _listener.Dispose();
        if (_thread.ThreadState != ThreadState.Unstarted)
        {
            _thread.Join(TimeSpan.FromSeconds(10));
        }
    }

    /// <summary>Starts accepting; the derived constructor calls it once its own fields are set.</summary>
    protected void Start() => _thread.Start();

    /// <summary>One connection; false to stop listening for good.</summary>
    protected abstract bool Serve(Socket socket);

    /// <summary>Called once the listener is closed after <see cref="Serve"/> returned false.</summary>
    protected virtual void Stopped()
    {
    }

    /// <summary>Reads one replication frame: its kind and its body.</summary>
    protected static (FrameKind Kind, byte[] Body) ReceiveFrame(Socket socket)
    {
        socket.ReceiveTimeout = 10_000;
        var header = new byte[5];
        ReceiveExactly(socket, header);
        var body = new byte[BinaryPrimitives.ReadUInt32LittleEndian(header) - 1];
        ReceiveExactly(socket, body);
        return ((FrameKind)header[4], body);
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

    private void AcceptLoop()
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

            var more = true;
            using (socket)
            {
                try
                {
                    more = Serve(socket);
                }
                catch (Exception ex) when (ex is SocketException or IOException)
                {
                    // The node gave up on this connection (a probe times out, say): it tries again.
                }
            }

            if (!more)
            {
                _listener.Dispose();
                Stopped();
                return;
            }
        }
    }
}
