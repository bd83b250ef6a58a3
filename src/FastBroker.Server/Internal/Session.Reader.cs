using System.Buffers;
using System.Text;
using FastBroker.Protocol;

namespace FastBroker.Server.Internal;

/// <summary>The read side: framing, back-pressure, the handshake, PING.</summary>
internal sealed partial class Session
{
    /// <summary>Features this server implements (all of protocol version 1).</summary>
    internal const ProtocolFeatures SupportedFeatures = ProtocolFeatures.IdempotentProducer | ProtocolFeatures.Batching
        | ProtocolFeatures.WorkQueues | ProtocolFeatures.HeaderFilters | ProtocolFeatures.Admin | ProtocolFeatures.InitProducer
        | ProtocolFeatures.ProducerEpoch | ProtocolFeatures.OffsetFallback;

    // Below this a client's maxInboundFrameSize is raised: every reply (an ERROR with a short reason, a CONFIRM range,
    // WELCOME) must still fit. docs/server.md says so.
    private const int MinPeerFrame = 1024;

    // A client that stops reading may queue this much before its reads stop too: 1 MiB of replies, 64 Ki
    // confirmations (2 MiB of queued structs).
    private const int MaxQueuedReplyBytes = 1 << 20;
    private const long MaxQueuedConfirms = 1 << 16;

    private bool _open;
    private ProtocolFeatures _features;
    private int _peerMaxFrame = MinPeerFrame;
    private AccessPolicy _policy = AccessPolicy.AllowAll;
    private DeliveryEncoder? _encoder;
    private int _blockedClaim;
    private long _framesIn;

    private async Task ReadLoopAsync()
    {
        var input = _input!;
        while (!_closeRequested && !_stopRequested)
        {
            var read = input.ReadAsync();
            var waited = !read.IsCompleted;
            var result = await read.ConfigureAwait(false);
            if (waited)
            {
                _server.NoteReadWake();
            }

            var buffer = result.Buffer;
            if (result.IsCanceled)
            {
                if (_idleTimedOut && !_closeRequested)
                {
                    // Bytes may have arrived between the timer's check and this wake-up: only a real silence closes.
                    var idle = (long)(_options.HeartbeatInterval.TotalMilliseconds * 3);
                    if (Environment.TickCount64 - Volatile.Read(ref _lastReceived) > idle)
                    {
                        SetFinal(ErrorCode.IdleTimeout, $"nothing received for {idle} ms (3 × heartbeatIntervalMs)", 0);
                    }
                    else
                    {
                        _idleTimedOut = false;
                    }
                }

                if (_closeRequested || _stopRequested)
                {
                    return;
                }
            }
            else
            {
                Touch();
            }

            var start = buffer.Length;
            var handler = new FrameHandler(this);
            var framesBefore = _framesIn;
            while (true)
            {
                var before = buffer;
                if (FrameParser.TryParseClientFrame(ref buffer, ref handler, _open ? _options.MaxFrameSize : PreHandshakeMaxFrame, out var error))
                {
                    if (_blockedClaim > 0)
                    {
                        buffer = before; // the input ring is full: this frame is parsed again once there is room
                        break;
                    }

                    _framesIn++;
                    if (_closeRequested || Backlogged)
                    {
                        // Backlogged: replies pile up (one ADMIN frame of 20 bytes can queue a large document), so the
                        // frames after this one wait until the writer has drained; they stay in the pipe.
                        break;
                    }

                    continue;
                }

                if (error.IsError)
                {
                    SetFinal(error.Code, error.ToString(), error.RequestId);
                }

                break;
            }

            _server.CountIn(_framesIn - framesBefore, start - buffer.Length);
            if (_handshakeTimedOut && !_open && !_closeRequested)
            {
                // Judged after parsing what had arrived: a HELLO that was waiting for this reader (a busy thread pool
                // kept it from running) is the server's delay, not the peer's.
                SetFinal(ErrorCode.IdleTimeout, $"HELLO: the handshake did not complete within {HandshakeTimeoutMs} ms of connecting (the server's handshake timeout)", 0);
            }

            if (_closeRequested)
            {
                return;
            }

            if (_blockedClaim > 0)
            {
                // Nothing examined: the next read returns the same bytes at once. Meanwhile TCP back-pressure builds up
                // in the socket's receive buffer and the client's send buffer.
                input.AdvanceTo(buffer.Start);
                if (!await WaitForRoomAsync().ConfigureAwait(false))
                {
                    return;
                }

                continue;
            }

            if (Backlogged)
            {
                // Unparsed whole frames may remain: the next read must return them at once, not wait for new bytes.
                input.AdvanceTo(buffer.Start);
                if (!await WaitForWriterAsync().ConfigureAwait(false))
                {
                    return;
                }

                continue;
            }

            input.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted)
            {
                return; // the client closed its side (a truncated last frame is simply dropped)
            }
        }
    }

    private async ValueTask<bool> WaitForRoomAsync()
    {
        _blocked = true;
        try
        {
            await _broker.WaitForPublishRoomAsync(_blockedClaim, _stop.Token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        catch (BrokerException e)
        {
            SetFinal(ErrorCode.Closed, e.Message, 0, protocolError: false);
            return false;
        }
        finally
        {
            _blockedClaim = 0;
            _blocked = false;
            Touch();
        }
    }

    /// <summary>
    /// True when replies or confirmations pile up because the client does not read them: the reader then stops
    /// reading (TCP pushes back on the client) instead of letting this connection's memory grow.
    /// </summary>
    private bool Backlogged => _control.WrittenCount > MaxQueuedReplyBytes || Volatile.Read(ref _queuedConfirms) > MaxQueuedConfirms;

    private volatile bool _waitingForWriter;

    /// <summary>True while the reader waits for the writer to catch up (tests observe back-pressure with it; the idle timer reads it).</summary>
    internal bool WaitingForWriter => _waitingForWriter;

    /// <summary>True once the reader has waited for the writer (tests: the back-pressure path was taken).</summary>
    internal bool HasWaitedForWriter { get; private set; }

    /// <summary>Reply bytes queued for the writer (tests check the bound).</summary>
    internal int QueuedReplyBytes => _control.WrittenCount;

    /// <summary>
    /// Waits until the writer has drained the backlog. Not exempt from the idle timeout: if the client takes no bytes
    /// the writer's flush never ends, and the idle timer closes the connection (<see cref="CheckIdle"/>).
    /// </summary>
    private async ValueTask<bool> WaitForWriterAsync()
    {
        _waitingForWriter = true;
        HasWaitedForWriter = true;
        try
        {
            while (Backlogged && !_closeRequested && !_stopRequested)
            {
                await _writerProgress.WaitAsync().ConfigureAwait(false);
            }

            return !_closeRequested && !_stopRequested;
        }
        finally
        {
            _waitingForWriter = false;
            Touch();
        }
    }

    internal void OnHello(in FrameHeader header, in HelloFrame frame)
    {
        if (_open)
        {
            SetFinal(ErrorCode.UnexpectedFrame, "HELLO: the handshake is already done (a second HELLO)", header.RequestId);
            return;
        }

        if (frame.MinVersion > ProtocolConstants.Version || frame.MaxVersion < ProtocolConstants.Version)
        {
            SetFinal(ErrorCode.UnsupportedVersion, $"HELLO: no common protocol version (client {frame.MinVersion}–{frame.MaxVersion}, server {ProtocolConstants.Version}–{ProtocolConstants.Version})", header.RequestId);
            return;
        }

        var policy = AccessPolicy.AllowAll;
        if (_server.Tokens.Length > 0)
        {
            var token = frame.AuthToken;
            Span<byte> copy = token.Length <= 512 ? stackalloc byte[(int)token.Length] : new byte[token.Length];
            token.CopyTo(copy);
            var found = AccessPolicy.Authenticate(_server.Tokens, copy);
            if (found is null)
            {
                SetFinal(ErrorCode.AuthenticationFailed, token.IsEmpty ? "HELLO: this server requires an auth token" : "HELLO: the auth token is not accepted", header.RequestId);
                return;
            }

            policy = found;
        }

        if (Interlocked.CompareExchange(ref _handshakeState, 1, 0) != 0)
        {
            return; // evicted to make room for a newer connection: its socket is already closed
        }

        if (!_server.TryEnterEstablished())
        {
            SetFinal(ErrorCode.TooManyConnections, $"HELLO: the server's limit of {_options.MaxConnections} connections is reached", header.RequestId);
            return;
        }

        _established = true;
        _policy = policy;
        _features = frame.Features & SupportedFeatures & ~_options.WithheldFeatures;
        _peerMaxFrame = frame.MaxInboundFrameSize == 0 ? int.MaxValue : (int)Math.Clamp(frame.MaxInboundFrameSize, MinPeerFrame, int.MaxValue);
        _encoder = new DeliveryEncoder(_output!, Granted(ProtocolFeatures.Batching), _peerMaxFrame);
        Volatile.Write(ref _open, true);
        lock (_controlGate)
        {
            FrameWriter.WriteWelcome(
                _control,
                header.RequestId,
                ProtocolConstants.Version,
                (uint)_options.MaxFrameSize,
                _features,
                Id,
                (uint)_options.MaxSubscriptionsPerConnection,
                (uint)_options.HeartbeatInterval.TotalMilliseconds,
                Encoding.UTF8.GetBytes(_options.ServerName),
                Encoding.UTF8.GetBytes(BrokerServer.Version));
            _controlFrames++;
        }

        _signal.Set();
    }

    internal void OnPing(in FrameHeader header)
    {
        if (!EnsureOpen(header))
        {
            return;
        }

        lock (_controlGate)
        {
            FrameWriter.WritePong(_control, header.RequestId);
            _controlFrames++;
        }

        _signal.Set();
    }

    internal void OnPong(in FrameHeader header) => EnsureOpen(header);

    private bool Granted(ProtocolFeatures feature) => (_features & feature) == feature;

    /// <summary>Before WELCOME only HELLO is allowed (docs/protocol.md §3).</summary>
    private bool EnsureOpen(in FrameHeader header)
    {
        if (_open)
        {
            return true;
        }

        SetFinal(ErrorCode.UnexpectedFrame, $"{FrameTypes.GetName(header.Type)}: HELLO must be the first frame", header.RequestId);
        return false;
    }

    /// <summary>A feature the client was not granted: <c>UnexpectedFrame</c> and close (docs/protocol.md §3).</summary>
    private bool EnsureGranted(in FrameHeader header, ProtocolFeatures feature, string what)
    {
        if (Granted(feature))
        {
            return true;
        }

        SetFinal(ErrorCode.UnexpectedFrame, $"{FrameTypes.GetName(header.Type)}: {what} needs the {feature} feature, which was not granted", header.RequestId);
        return false;
    }
}
