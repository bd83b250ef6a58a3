using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using FastBroker.Protocol;

namespace FastBroker.ClientTests;

/// <summary>
/// A server that completes the handshake and then never answers anything (no CONFIRM, no OK): the way to have
/// operations pending for as long as a test needs. Built on the protocol codec, not on the real server.
/// </summary>
internal sealed class SilentServer : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Socket> _accepted = [];
    private readonly Task _accept;
    private long _bytesReceived;

    public SilentServer(ProtocolFeatures features = ProtocolFeatures.IdempotentProducer | ProtocolFeatures.Batching | ProtocolFeatures.WorkQueues | ProtocolFeatures.HeaderFilters | ProtocolFeatures.Admin)
    {
        _listener.Start();
        _accept = Task.Run(() => AcceptAsync(features));
    }

    public string Endpoint => $"127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

    /// <summary>Bytes received after the HELLOs.</summary>
    public long BytesReceived => Interlocked.Read(ref _bytesReceived);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        lock (_accepted)
        {
            foreach (var s in _accepted)
            {
                s.Dispose();
            }
        }

        try
        {
            await _accept;
        }
        catch (Exception)
        {
        }

        _stop.Dispose();
    }

    private async Task AcceptAsync(ProtocolFeatures features)
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception)
            {
                return;
            }

            lock (_accepted)
            {
                _accepted.Add(socket);
            }

            _ = Task.Run(() => ServeAsync(socket, features));
        }
    }

    private async Task ServeAsync(Socket socket, ProtocolFeatures features)
    {
        try
        {
            var header = new byte[16];
            await ReadExactlyAsync(socket, header);
            var length = BinaryPrimitives.ReadUInt32LittleEndian(header);
            var requestId = BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(8));
            await ReadExactlyAsync(socket, new byte[length - 12]);
            var welcome = new ArrayBufferWriter<byte>();
            FrameWriter.WriteWelcome(welcome, requestId, 1, ProtocolConstants.DefaultMaxFrameSize, features, 99, 64, 60_000, "silent"u8, "0"u8);
            await socket.SendAsync(welcome.WrittenMemory, SocketFlags.None, _stop.Token);
            var sink = new byte[64 * 1024];
            int n;
            while ((n = await socket.ReceiveAsync(sink, SocketFlags.None, _stop.Token)) > 0)
            {
                Interlocked.Add(ref _bytesReceived, n);
            }
        }
        catch (Exception)
        {
            // The test is over or the client went away.
        }
    }

    private async Task ReadExactlyAsync(Socket socket, byte[] buffer)
    {
        var read = 0;
        while (read < buffer.Length)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory(read), SocketFlags.None, _stop.Token);
            if (n == 0)
            {
                throw new EndOfStreamException();
            }

            read += n;
        }
    }
}
