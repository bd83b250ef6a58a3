using System.Buffers;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using FastBroker.Protocol;

namespace FastBroker.ServerTests;

/// <summary>
/// A raw protocol client for tests: frames written with <see cref="FrameWriter"/>, frames read with
/// <see cref="FrameParser.TryParseServerFrame"/>. Every read has a deadline, so a missing frame fails the test
/// instead of hanging it.
/// </summary>
internal sealed class RawConnection : IAsyncDisposable
{
    public const ProtocolFeatures AllFeatures = ProtocolFeatures.IdempotentProducer | ProtocolFeatures.Batching
        | ProtocolFeatures.WorkQueues | ProtocolFeatures.HeaderFilters | ProtocolFeatures.Admin;

    /// <summary>Generous: the machine is shared and slow to wake up; only a real hang takes this long.</summary>
    public static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(30);

    private readonly Socket _socket;
    private readonly Stream _stream;
    private byte[] _buffer = new byte[64 * 1024];
    private int _start;
    private int _end;
    private ulong _nextRequestId = 100;

    private RawConnection(Socket socket, Stream stream)
    {
        _socket = socket;
        _stream = stream;
    }

    public Welcome? Welcome { get; private set; }

    public ulong NextRequestId() => _nextRequestId++;

    public static async Task<RawConnection> ConnectAsync(IPEndPoint endPoint, bool tls = false, int? receiveBufferSize = null)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        if (receiveBufferSize is { } size)
        {
            socket.ReceiveBufferSize = size; // before connect: the window the server sees stays this small
        }

        await socket.ConnectAsync(endPoint);
        Stream stream = new NetworkStream(socket, ownsSocket: false);
        if (tls)
        {
            var ssl = new SslStream(stream, leaveInnerStreamOpen: false, (_, _, _, _) => true);
            using var cts = new CancellationTokenSource(ReadTimeout);
            await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "localhost" }, cts.Token);
            stream = ssl;
        }

        return new RawConnection(socket, stream);
    }

    /// <summary>Connects and completes the handshake, failing the test if WELCOME does not come.</summary>
    public static async Task<RawConnection> OpenAsync(IPEndPoint endPoint, ProtocolFeatures features = AllFeatures, string? token = null, uint maxInboundFrameSize = 0, bool tls = false, int? receiveBufferSize = null)
    {
        var c = await ConnectAsync(endPoint, tls, receiveBufferSize);
        await c.SendAsync(w => FrameWriter.WriteHello(w, 1, "test"u8, "1.0"u8, features, token is null ? default : Encoding.UTF8.GetBytes(token), maxInboundFrameSize));
        var f = await c.ReadAsync();
        Assert.True(f.Type == FrameType.Welcome, $"expected WELCOME, got {f}");
        c.Welcome = f.Welcome;
        return c;
    }

    public async Task SendAsync(Action<ArrayBufferWriter<byte>> write)
    {
        var w = new ArrayBufferWriter<byte>();
        write(w);
        await SendRawAsync(w.WrittenMemory);
    }

    public async Task SendRawAsync(ReadOnlyMemory<byte> bytes)
    {
        await _stream.WriteAsync(bytes);
        await _stream.FlushAsync();
    }

    /// <summary>Half-closes: the server sees end of stream.</summary>
    public void ShutdownSend() => _socket.Shutdown(SocketShutdown.Send);

    /// <summary>
    /// Publishes "m0" … "m<c>count</c>-1" to <paramref name="topic"/> in PUBLISH_BATCH frames of <paramref name="perBatch"/>
    /// (request ids 1 … <paramref name="count"/>) and waits until every one is confirmed stored.
    /// </summary>
    public async Task PublishNumberedAsync(string topic, int count, int perBatch)
    {
        var name = Encoding.UTF8.GetBytes(topic);
        for (var first = 0; first < count; first += perBatch)
        {
            var w = new ArrayBufferWriter<byte>();
            var batch = new PublishBatchWriter(w, 64 * 1024, firstRequestId: (ulong)(1 + first));
            for (var i = first; i < Math.Min(count, first + perBatch); i++)
            {
                Assert.True(batch.TryAdd(name, Encoding.UTF8.GetBytes($"m{i}")));
            }

            batch.Complete();
            await SendRawAsync(w.WrittenMemory);
        }

        var confirms = await ReadConfirmsAsync([.. Enumerable.Range(1, count).Select(i => (ulong)i)]);
        Assert.All(confirms.Values, c => Assert.Equal(ErrorCode.None, c.Status));
    }

    /// <summary>Drops the connection as a process that dies does: linger 0, so the close sends a reset (RST), not a FIN.</summary>
    public void Reset()
    {
        _socket.LingerState = new LingerOption(true, 0);
        _socket.Close();
    }

    public Task PublishAsync(ulong requestId, string topic, string payload, PublishFlags flags = PublishFlags.None, byte[]? headers = null, ulong producerId = 0, ulong producerSequence = 0, string? key = null)
        => SendAsync(w => FrameWriter.WritePublish(w, requestId, Encoding.UTF8.GetBytes(topic), Encoding.UTF8.GetBytes(payload), key is null ? default : Encoding.UTF8.GetBytes(key), headers, flags: flags, producerId: producerId, producerSequence: producerSequence));

    public Task SubscribeAsync(ulong requestId, uint subscriptionId, string pattern, uint credit, Protocol.StartKind start = Protocol.StartKind.Earliest, ulong startValue = 0, string? durable = null, Protocol.StartKind fallback = Protocol.StartKind.Latest, byte[]? filters = null)
        => SendAsync(w => FrameWriter.WriteSubscribe(w, requestId, subscriptionId, Encoding.UTF8.GetBytes(pattern), credit, start, startValue, durable is null ? default : Encoding.UTF8.GetBytes(durable), fallback, filters));

    /// <summary>The next frame; fails on timeout or end of stream.</summary>
    public async Task<ServerFrame> ReadAsync(TimeSpan? timeout = null)
    {
        return await TryReadAsync(timeout) ?? throw new EndOfStreamException("the server closed the connection");
    }

    /// <summary>The next frame, or null at end of stream; throws <see cref="TimeoutException"/> past the deadline.</summary>
    public async Task<ServerFrame?> TryReadAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? ReadTimeout);
        while (true)
        {
            if (TryParse(out var frame))
            {
                return frame;
            }

            if (_end == _buffer.Length)
            {
                if (_start > 0)
                {
                    Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                    _end -= _start;
                    _start = 0;
                }
                else
                {
                    Array.Resize(ref _buffer, _buffer.Length * 2);
                }
            }

            int n;
            try
            {
                n = await _stream.ReadAsync(_buffer.AsMemory(_end), cts.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"no frame from the server within {(timeout ?? ReadTimeout).TotalSeconds} s");
            }
            catch (IOException)
            {
                return null; // reset by the server: as good as closed for these tests
            }

            if (n == 0)
            {
                Assert.True(_start == _end, $"the server closed the connection in the middle of a frame ({_end - _start} bytes left)");
                return null;
            }

            _end += n;
        }
    }

    /// <summary>Reads frames until <paramref name="match"/> holds; returns all of them (the matching one last).</summary>
    public async Task<List<ServerFrame>> ReadUntilAsync(Func<ServerFrame, bool> match, TimeSpan? timeout = null)
    {
        var frames = new List<ServerFrame>();
        using var cts = new CancellationTokenSource(timeout ?? ReadTimeout);
        while (true)
        {
            var f = await ReadAsync(timeout);
            frames.Add(f);
            if (match(f))
            {
                return frames;
            }

            if (f.CloseConnection)
            {
                throw new InvalidOperationException($"connection closed by the server before the expected frame: {f}");
            }

            if (cts.IsCancellationRequested)
            {
                throw new TimeoutException("the expected frame did not come: " + string.Join(" | ", frames.Take(20)));
            }
        }
    }

    /// <summary>Reads until end of stream (the server closed); returns what came before.</summary>
    public async Task<List<ServerFrame>> ReadUntilClosedAsync(TimeSpan? timeout = null)
    {
        var frames = new List<ServerFrame>();
        while (await TryReadAsync(timeout) is { } f)
        {
            frames.Add(f);
        }

        return frames;
    }

    /// <summary>Expects an ERROR with CLOSE and the given code, then end of stream; returns the error.</summary>
    public async Task<ServerFrame> ExpectClosedWithAsync(ErrorCode code)
    {
        var frames = await ReadUntilClosedAsync();
        var error = frames.LastOrDefault();
        Assert.True(error is not null, "the server closed without an ERROR");
        Assert.True(error!.Type == FrameType.Error && error.ErrorCode == code && error.CloseConnection, $"expected ERROR {code} with CLOSE last, got: {string.Join(" | ", frames)}");
        return error;
    }

    /// <summary>Sends PING and reads up to its PONG: everything the server wrote before answering is returned.</summary>
    public async Task<List<ServerFrame>> RoundTripAsync()
    {
        var id = NextRequestId();
        await SendAsync(w => FrameWriter.WritePing(w, id));
        return await ReadUntilAsync(f => f.Type == FrameType.Pong && f.RequestId == id);
    }

    /// <summary>Reads until <paramref name="count"/> deliveries have arrived (DELIVER or DELIVER_BATCH entries).</summary>
    public async Task<List<Delivery>> ReadDeliveriesAsync(int count, List<ServerFrame>? others = null)
    {
        var deliveries = new List<Delivery>();
        while (deliveries.Count < count)
        {
            var f = await ReadAsync();
            if (f.Type is FrameType.Deliver or FrameType.DeliverBatch)
            {
                deliveries.AddRange(f.Deliveries);
            }
            else if (others is not null)
            {
                others.Add(f);
            }
            else
            {
                Assert.Fail($"expected deliveries, got {f}");
            }
        }

        return deliveries;
    }

    /// <summary>Reads CONFIRM frames until every request id in <paramref name="ids"/> is covered; returns id → range outcome.</summary>
    public async Task<Dictionary<ulong, (ErrorCode Status, ulong Offset, bool Duplicate)>> ReadConfirmsAsync(IReadOnlyCollection<ulong> ids, List<ConfirmRange>? ranges = null)
    {
        var result = new Dictionary<ulong, (ErrorCode, ulong, bool)>();
        while (!ids.All(result.ContainsKey))
        {
            var f = await ReadAsync();
            Assert.True(f.Type == FrameType.Confirm, $"expected CONFIRM, got {f}");
            foreach (var r in f.Ranges)
            {
                ranges?.Add(r);
                for (var i = 0u; i < r.Count; i++)
                {
                    Assert.True(result.TryAdd(r.FirstRequestId + i, (r.Status, r.Status == ErrorCode.None ? r.FirstOffset + i : 0, r.Duplicate)), $"request {r.FirstRequestId + i} confirmed twice");
                }
            }
        }

        return result;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _stream.DisposeAsync();
        }
        catch (IOException)
        {
        }

        _socket.Dispose();
    }

    private bool TryParse(out ServerFrame frame)
    {
        frame = null!;
        if (_end == _start)
        {
            return false;
        }

        var sequence = new ReadOnlySequence<byte>(_buffer, _start, _end - _start);
        var handler = new Collector(new Box());
        var before = sequence.Length;
        if (FrameParser.TryParseServerFrame(ref sequence, ref handler, 64 << 20, out var error))
        {
            _start += (int)(before - sequence.Length);
            frame = handler.Box.Frame!;
            return true;
        }

        Assert.False(error.IsError, $"the server sent a malformed frame: {error}");
        return false;
    }

    private sealed class Box
    {
        public ServerFrame? Frame { get; set; }
    }

    private readonly struct Collector(Box box) : IServerFrameHandler
    {
        public Box Box { get; } = box;

        public void OnWelcome(in FrameHeader header, in WelcomeFrame f) => Box.Frame = new ServerFrame
        {
            Type = header.Type,
            RequestId = header.RequestId,
            Welcome = new Welcome(f.Version, f.MaxFrameSize, f.Features, f.ConnectionId, f.MaxSubscriptions, f.HeartbeatIntervalMs, Encoding.UTF8.GetString(f.ServerName), Encoding.UTF8.GetString(f.ServerVersion)),
        };

        public void OnPing(in FrameHeader header) => Box.Frame = Plain(header);

        public void OnPong(in FrameHeader header) => Box.Frame = Plain(header);

        public void OnOk(in FrameHeader header, ulong value, ulong epoch) => Box.Frame = new ServerFrame { Type = header.Type, RequestId = header.RequestId, OkValue = value, OkEpoch = epoch };

        public void OnError(in FrameHeader header, in ErrorFrame f) => Box.Frame = new ServerFrame
        {
            Type = header.Type,
            Flags = header.Flags,
            RequestId = header.RequestId,
            ErrorCode = f.Code,
            ErrorReason = f.GetReasonString(),
            ErrorSubscriptionId = f.SubscriptionId,
        };

        public void OnConfirm(in FrameHeader header, in ConfirmFrame f)
        {
            var frame = Plain(header);
            foreach (var r in f)
            {
                frame.Ranges.Add(r);
            }

            Box.Frame = frame;
        }

        public void OnDeliver(in FrameHeader header, in DeliverFrame f)
        {
            var frame = Plain(header);
            frame.Deliveries.Add(new Delivery(f.SubscriptionId, f.DeliveryCount, f.Offset, f.TimestampNs, Encoding.UTF8.GetString(f.Topic), f.Key.ToArray(), f.Headers.Entries.ToArray(), f.Payload.ToArray()));
            Box.Frame = frame;
        }

        public void OnDeliverBatch(in FrameHeader header, in DeliverBatchFrame f)
        {
            var frame = Plain(header);
            foreach (var e in f)
            {
                frame.Deliveries.Add(new Delivery(f.SubscriptionId, e.DeliveryCount, e.Offset, e.TimestampNs, Encoding.UTF8.GetString(e.Topic), e.Key.ToArray(), e.Headers.Entries.ToArray(), e.Payload.ToArray()));
            }

            Box.Frame = frame;
        }

        public void OnDropped(in FrameHeader header, uint subscriptionId, ulong droppedCount, ulong resumeOffset) => Box.Frame = new ServerFrame
        {
            Type = header.Type,
            RequestId = header.RequestId,
            DroppedSubscriptionId = subscriptionId,
            DroppedCount = droppedCount,
            ResumeOffset = resumeOffset,
        };

        public void OnAdminResult(in FrameHeader header, in AdminResultFrame f) => Box.Frame = new ServerFrame
        {
            Type = header.Type,
            RequestId = header.RequestId,
            AdminQuery = f.Query,
            AdminJson = Encoding.UTF8.GetString(f.Result.ToArray()),
        };

        private static ServerFrame Plain(in FrameHeader header) => new() { Type = header.Type, Flags = header.Flags, RequestId = header.RequestId };
    }
}
