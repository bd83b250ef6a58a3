using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using FastBroker.Protocol;

namespace FastBroker.ClientTests;

/// <summary>
/// A server that completes the handshake and then never answers anything (no CONFIRM, no OK, no PONG): the way to have
/// operations pending for as long as a test needs. Built on the protocol codec, not on the real server. Knobs for the
/// cases a real server cannot be brought to: the features granted to the next connections (<see cref="Features"/>),
/// every publish refused with one status (<see cref="RefusePublishesWith"/>: e.g. NotReplicated without a standby
/// pair), WELCOMEs held back (<see cref="HoldWelcomes"/>), and connections cut (<see cref="DropConnections"/>).
/// </summary>
internal sealed class SilentServer : IAsyncDisposable
{
    public const ProtocolFeatures DefaultFeatures = ProtocolFeatures.IdempotentProducer | ProtocolFeatures.Batching | ProtocolFeatures.WorkQueues | ProtocolFeatures.HeaderFilters | ProtocolFeatures.Admin;

    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Socket> _accepted = [];
    private readonly Task _accept;
    private TaskCompletionSource _welcomes = NewGate(open: true);
    private long _bytesReceived;
    private long _publishBatches;
    private long _initProducers;
    private int _features;

    public SilentServer(ProtocolFeatures features = DefaultFeatures)
    {
        Features = features;
        _listener.Start();
        _accept = Task.Run(AcceptAsync);
    }

    public string Endpoint => $"127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

    /// <summary>What the WELCOME of each later connection grants.</summary>
    public ProtocolFeatures Features
    {
        get => (ProtocolFeatures)Volatile.Read(ref _features);
        set => Volatile.Write(ref _features, (int)value);
    }

    /// <summary>When set, every PUBLISH_BATCH (not NO_CONFIRM) is answered with one CONFIRM range of this status.</summary>
    public ErrorCode? RefusePublishesWith { get; init; }

    /// <summary>
    /// After its WELCOME the server reads nothing more (a frozen process: its kernel still takes bytes until the
    /// socket buffers fill, then the client's sends stop).
    /// </summary>
    public bool Deaf { get; init; }

    /// <summary>Bytes received after the HELLOs.</summary>
    public long BytesReceived => Interlocked.Read(ref _bytesReceived);

    /// <summary>PUBLISH_BATCH frames received, on every connection.</summary>
    public long PublishBatches => Interlocked.Read(ref _publishBatches);

    /// <summary>INIT_PRODUCER frames received, on every connection.</summary>
    public long InitProducers => Interlocked.Read(ref _initProducers);

    /// <summary>Connections accepted so far.</summary>
    public int Connections
    {
        get
        {
            lock (_accepted)
            {
                return _accepted.Count;
            }
        }
    }

    /// <summary>Later connections get no WELCOME until <see cref="ReleaseWelcomes"/>: the client stays between connections.</summary>
    public void HoldWelcomes() => Volatile.Write(ref _welcomes, NewGate(open: false));

    public void ReleaseWelcomes() => Volatile.Read(ref _welcomes).TrySetResult();

    /// <summary>Closes every connection accepted so far (the client sees the connection end).</summary>
    public void DropConnections()
    {
        lock (_accepted)
        {
            foreach (var s in _accepted)
            {
                s.Dispose();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        ReleaseWelcomes();
        _listener.Stop();
        DropConnections();
        try
        {
            await _accept;
        }
        catch (Exception)
        {
        }

        _stop.Dispose();
    }

    private static TaskCompletionSource NewGate(bool open)
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (open)
        {
            gate.SetResult();
        }

        return gate;
    }

    private async Task AcceptAsync()
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

            _ = Task.Run(() => ServeAsync(socket));
        }
    }

    private async Task ServeAsync(Socket socket)
    {
        try
        {
            var header = new byte[16];
            await ReadExactlyAsync(socket, header);
            var length = BinaryPrimitives.ReadUInt32LittleEndian(header);
            var requestId = BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(8));
            await ReadExactlyAsync(socket, new byte[length - 12]);
            await Volatile.Read(ref _welcomes).Task.WaitAsync(_stop.Token);
            var welcome = new ArrayBufferWriter<byte>();
            FrameWriter.WriteWelcome(welcome, requestId, 1, ProtocolConstants.DefaultMaxFrameSize, Features, 99, 64, 60_000, "silent"u8, "0"u8);
            await socket.SendAsync(welcome.WrittenMemory, SocketFlags.None, _stop.Token);
            if (Deaf)
            {
                await Task.Delay(Timeout.Infinite, _stop.Token);
            }

            while (true)
            {
                await ReadExactlyAsync(socket, header);
                Interlocked.Add(ref _bytesReceived, header.Length);
                var body = new byte[BinaryPrimitives.ReadUInt32LittleEndian(header) - 12];
                await ReadExactlyAsync(socket, body);
                Interlocked.Add(ref _bytesReceived, body.Length);
                switch ((FrameType)header[4])
                {
                    case FrameType.InitProducer:
                        Interlocked.Increment(ref _initProducers);
                        break;
                    case FrameType.PublishBatch:
                        Interlocked.Increment(ref _publishBatches);
                        if (RefusePublishesWith is { } status && (header[5] & (byte)PublishFlags.NoConfirm) == 0)
                        {
                            var confirm = new ArrayBufferWriter<byte>();
                            var count = BinaryPrimitives.ReadUInt16LittleEndian(body.AsSpan(18));
                            FrameWriter.WriteConfirm(confirm, new ConfirmRange(BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(8)), count, status, false, 0));
                            await socket.SendAsync(confirm.WrittenMemory, SocketFlags.None, _stop.Token);
                        }

                        break;
                }
            }
        }
        catch (Exception)
        {
            // The test is over, the connection was dropped, or the client went away.
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
