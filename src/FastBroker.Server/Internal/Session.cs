using System.IO.Pipelines;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using FastBroker.Protocol;
using FastBroker.Threading;

namespace FastBroker.Server.Internal;

/// <summary>
/// One client connection: a reader task that parses frames from a <see cref="PipeReader"/> and acts on them, and a
/// writer task, the only owner of the <see cref="PipeWriter"/>, that drains (in order) control replies,
/// publish confirmations and deliveries, then flushes. Everything that goes wrong here stays here: the session
/// answers with an ERROR and closes its own socket, never anything else.
/// </summary>
/// <remarks>
/// Threads: the reader and the writer are async loops on the thread pool; broker threads only call the confirm sink
/// (<see cref="OnPublishConfirmed"/>), which enqueues a struct and sets the writer's signal, never blocking.
/// </remarks>
internal sealed partial class Session : IPublishConfirmSink
{
    // Before HELLO a client keeps its frames under 64 KiB (docs/protocol.md §2); an unauthenticated peer gets no more.
    private const int PreHandshakeMaxFrame = ProtocolConstants.MinimumMaxFrameSize;

    // A client that half-closes or breaks the protocol still gets the confirmations of its earlier publishes: 5 s covers
    // a group commit (fsync) or a standby's ack; what the broker has not answered by then stays unconfirmed.
    private const long CloseDrainMs = 5_000;

    private readonly BrokerServer _server;
    private readonly Broker _broker;
    private readonly ServerOptions _options;
    private readonly Socket _socket;
    private readonly AsyncSignal _signal = new();
    private readonly AsyncSignal _writerProgress = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly NoConfirmSink _noConfirmSink;
    private Stream? _stream;
    private PipeReader? _input;
    private PipeWriter? _output;
    private volatile bool _stopRequested;
    private volatile bool _closeRequested;
    private volatile bool _writerExit;
    private volatile bool _idleTimedOut;
    private volatile bool _handshakeTimedOut;
    private readonly long _acceptedAt;
    private volatile bool _blocked; // waiting for input-ring room: the broker's doing, not the client's
    private volatile bool _aborted; // the socket was dropped (Abort): nothing more can be sent
    private long _lastReceived;
    private long _flushingSince; // Environment.TickCount64 when the writer's pending flush began; 0 = none
    private long _flushSampled; // the flush whose acknowledged-byte baseline is in _bytesAcked (idle timer only)
    private ulong _bytesAcked;
    private long _lastAckProgress;
    private int _stallClosed;
    private long _stopDeadline;
    private bool _established;
    private int _handshakeState; // 0: in its handshake (no HELLO accepted yet); 1: past it; 2: evicted to make room
    private FinalError? _final;

    public Session(BrokerServer server, Broker broker, Socket socket, ulong id)
    {
        _server = server;
        _broker = broker;
        _options = server.Options;
        _socket = socket;
        Id = id;
        _noConfirmSink = new NoConfirmSink(this);
        _lastReceived = Environment.TickCount64;
        _acceptedAt = _lastReceived;
    }

    /// <summary>The connection id announced in WELCOME.</summary>
    public ulong Id { get; }

    /// <summary>The session's whole life; completes when its socket is closed.</summary>
    public Task Completion { get; private set; } = Task.CompletedTask;

    /// <summary>Starts the session in the background.</summary>
    public void Start() => Completion = Task.Run(RunAsync);

    /// <summary>Graceful shutdown: stop reading, drain confirmations until <paramref name="deadline"/> (Environment.TickCount64), say Closed.</summary>
    public void RequestStop(long deadline)
    {
        _stopDeadline = deadline;
        _stopRequested = true;
        _writerProgress.Set();
        try
        {
            _stop.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }

        CancelRead();
    }

    /// <summary>
    /// Called by the server's idle timer: closes the session when nothing arrived for <paramref name="idleMs"/>, or
    /// when its writer has had a flush pending for that long while the client acknowledged no byte (it stopped
    /// reading). Only a reader waiting for room in the broker's input ring is exempt from the first (that wait is the
    /// broker's, not the client's); a reader waiting for the writer is judged by the writer's progress.
    /// </summary>
    public void CheckIdle(long now, long idleMs)
    {
        if (_input is null || Volatile.Read(ref _stallClosed) != 0)
        {
            return;
        }

        // Before the other checks: a session already closing (IdleTimeout, shutdown) may be stuck on the same flush.
        var stalled = WriterStalledFor(now);
        if (stalled > idleMs)
        {
            CloseStalled(stalled, idleMs);
            return;
        }

        if (_closeRequested)
        {
            return;
        }

        // Before HELLO the deadline counts from the accept, not from the last byte: a peer that trickles a byte at a
        // time (or a HELLO it never finishes) would otherwise hold its slot for as long as it likes.
        if (!Volatile.Read(ref _open) && now - _acceptedAt > HandshakeTimeoutMs)
        {
            _handshakeTimedOut = true;
            CancelRead();
            return;
        }

        if (_blocked || WaitingForWriter || _idleTimedOut)
        {
            return;
        }

        if (now - Volatile.Read(ref _lastReceived) > idleMs)
        {
            _idleTimedOut = true;
            CancelRead();
        }
    }

    /// <summary>
    /// Milliseconds the writer's pending flush has gone without the client acknowledging a byte; 0 when no flush is
    /// pending. Where the acknowledged count cannot be read, the time since the flush began.
    /// </summary>
    private long WriterStalledFor(long now)
    {
        var since = Volatile.Read(ref _flushingSince);
        if (since == 0)
        {
            return 0;
        }

        if (TcpAcks.TryGet(_socket, out var acked))
        {
            if (_flushSampled != since)
            {
                _flushSampled = since; // the first look at this flush: a baseline, not progress
                _bytesAcked = acked;
            }
            else if (acked != _bytesAcked)
            {
                _bytesAcked = acked;
                _lastAckProgress = now;
            }
        }

        return now - Math.Max(since, _lastAckProgress);
    }

    /// <summary>Drops a connection that takes no bytes: no ERROR can reach it, so the reason goes to the log.</summary>
    private void CloseStalled(long stalledMs, long idleMs)
    {
        if (Interlocked.Exchange(ref _stallClosed, 1) != 0)
        {
            return;
        }

        _options.TestHook?.Invoke("stalled", Id);
        // Limited as a protocol-error close is: a client that reconnects and stops reading, again and again, or many
        // stuck at once, would otherwise write a line per connection.
        _server.LogClose($"connection {Id} ({RemoteEndPoint}): closing: the client took no bytes for {stalledMs} ms with frames waiting to be sent (it stopped reading; {idleMs} ms = 3 × heartbeatIntervalMs allowed)");
        Abort();
    }

    /// <summary>True while no HELLO has been accepted (nor the session evicted): nobody knows who the peer is yet.</summary>
    internal bool InHandshake => Volatile.Read(ref _handshakeState) == 0;

    /// <summary>True once <see cref="TryEvict"/> closed this session.</summary>
    internal bool Evicted => Volatile.Read(ref _handshakeState) == 2;

    /// <summary>When it was accepted (Environment.TickCount64).</summary>
    internal long AcceptedAt => _acceptedAt;

    /// <summary>
    /// Accept loop, every slot taken: closes this session if it is still in its handshake, so that a new connection
    /// gets its slot; false if it has got past its HELLO meanwhile (an established connection is never evicted).
    /// </summary>
    internal bool TryEvict(int open)
    {
        if (Interlocked.CompareExchange(ref _handshakeState, 2, 0) != 0)
        {
            return false;
        }

        _server.NoteEvicted();
        _server.LogClose($"connection {Id} ({RemoteEndPoint}): closing: still in its handshake after {Environment.TickCount64 - _acceptedAt} ms while every slot is taken ({open} connections open): the oldest such connection makes room for a new one");
        Abort();
        return true;
    }

    /// <summary>Kills the connection at once (server shutdown past its deadline).</summary>
    public void Abort()
    {
        _aborted = true;
        _closeRequested = true;
        _writerProgress.Set();
        CancelRead();
        try
        {
            _socket.Dispose();
        }
        catch (Exception)
        {
        }
    }

    /// <summary>The connection's socket (tests shrink its send buffer to reach a full socket quickly).</summary>
    internal Socket Socket => _socket;

    /// <summary>Wakes the writer (new confirmation, reply, credit or readable subscription).</summary>
    public void WakeWriter() => _signal.Set();

    public void Log(string message) => _server.Log($"connection {Id} ({RemoteEndPoint}): {message}");

    public void LogError(string what, Exception e) => Log($"{what} failed: {e.GetType().Name}: {e.Message}");

    private string RemoteEndPoint
    {
        get
        {
            try
            {
                return _socket.RemoteEndPoint?.ToString() ?? "?";
            }
            catch (Exception)
            {
                return "?";
            }
        }
    }

    private async Task RunAsync()
    {
        try
        {
            Stream stream = new NetworkStream(_socket, ownsSocket: false);
            _stream = stream;
            if (_server.Certificate is { } certificate)
            {
                var ssl = new SslStream(stream, leaveInnerStreamOpen: false);
                _stream = ssl;
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                var left = TimeSpan.FromMilliseconds(Math.Max(1, HandshakeTimeoutMs - (Environment.TickCount64 - _acceptedAt)));
                timeout.CancelAfter(left < _options.TlsHandshakeTimeout ? left : _options.TlsHandshakeTimeout);
                if (await SpeaksPlainAsync(timeout.Token).ConfigureAwait(false))
                {
                    await RefusePlainClientAsync(timeout.Token).ConfigureAwait(false);
                    return;
                }

                await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = certificate }, timeout.Token).ConfigureAwait(false);
                stream = ssl;
            }

            // 16 KiB reads: one syscall carries a hundred small publishes; bigger frames span segments. 32 KiB write
            // segments: a flush is one send per segment, and a DELIVER_BATCH or CONFIRM fills what its segment has left.
            _input = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 16 * 1024, minimumReadSize: 4 * 1024, leaveOpen: true));
            _output = PipeWriter.Create(stream, new StreamPipeWriterOptions(minimumBufferSize: 32 * 1024, leaveOpen: true));
            EnableSendNow();
            Touch();
            if (_stopRequested)
            {
                return;
            }

            var writer = WriteLoopAsync();
            var socketFailed = false;
            try
            {
                await ReadLoopAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (IsConnectionFailure(e))
            {
                socketFailed = true;
            }
            catch (Exception e)
            {
                // A failure of this server's own (a broker that closed under the frame, a bug): the client is told why
                // before the close, as for a protocol error, rather than finding its connection just gone.
                LogError("reading", e);
                SetFinal(
                    e switch
                    {
                        BrokerException b => ToWire(b.Code),
                        ObjectDisposedException => ErrorCode.Closed,
                        _ => ErrorCode.Internal,
                    },
                    $"the server failed to handle a frame and closes the connection: {(e is BrokerException ? e.Message : $"{e.GetType().Name}: {e.Message}")}",
                    0,
                    protocolError: false);
            }

            ReleaseMembers();
            if (!_closeRequested && _stopRequested)
            {
                await DrainConfirmationsAsync(_stopDeadline, writer).ConfigureAwait(false);
                SetFinal(ErrorCode.Closed, "the server is shutting down", 0, protocolError: false);
            }
            else if (!socketFailed)
            {
                // The client half-closed (end of stream) or broke the protocol, but its socket may still take bytes: what
                // it published before is confirmed ahead of the last frame, as far as the broker answers within the drain.
                var deadline = Environment.TickCount64 + CloseDrainMs;
                await DrainConfirmationsAsync(_stopRequested ? Math.Min(deadline, _stopDeadline) : deadline, writer).ConfigureAwait(false);
            }

            _writerExit = true;
            _signal.Set();
            var grace = _stopRequested ? Math.Max(100, _stopDeadline - Environment.TickCount64) : 5_000;
            try
            {
                await writer.WaitAsync(TimeSpan.FromMilliseconds(grace)).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // The peer stopped reading: dropping the socket fails the pending flush and ends the writer.
                Abort();
                await writer.ConfigureAwait(false);
            }
        }
        catch (Exception e) when (IsConnectionFailure(e) || e is OperationCanceledException or AuthenticationException)
        {
            if (_input is null)
            {
                // Through the limit per text, as a protocol-error close: a plain-TCP client or a scanner reconnecting in
                // a loop would otherwise write a line per connection.
                _server.LogClose($"connection {Id} ({RemoteEndPoint}): TLS handshake failed: {e.Message}");
            }
        }
        catch (Exception e)
        {
            LogError("session", e);
        }
        finally
        {
            CloseConsumers();
            try
            {
                _input?.Complete();
            }
            catch (Exception)
            {
            }

            try
            {
                _stream?.Dispose();
            }
            catch (Exception)
            {
            }

            _socket.Dispose();
            _stop.Dispose();
            if (_established)
            {
                _server.LeaveEstablished();
            }

            _server.OnSessionEnded(this);
        }
    }

    /// <summary>
    /// The end of a session (shutdown, end of stream, protocol error): polls until every claimed publish has come back
    /// from the broker, the deadline (Environment.TickCount64) passes, or the socket can no longer be written.
    /// </summary>
    private async Task DrainConfirmationsAsync(long deadline, Task writer)
    {
        while (Volatile.Read(ref _pendingConfirms) > 0 && Environment.TickCount64 < deadline && !writer.IsCompleted && !_aborted)
        {
            await Task.Delay(2).ConfigureAwait(false);
        }
    }

    private long HandshakeTimeoutMs => (long)_options.HandshakeTimeout.TotalMilliseconds;

    private void Touch() => Volatile.Write(ref _lastReceived, Environment.TickCount64);

    private void CancelRead()
    {
        try
        {
            _input?.CancelPendingRead();
        }
        catch (Exception)
        {
        }
    }

    /// <summary>Records the ERROR (with CLOSE) the writer sends last, and stops the reader.</summary>
    private void SetFinal(ErrorCode code, string reason, ulong requestId, bool protocolError = true)
    {
        if (_final is not null)
        {
            return;
        }

        _final = new FinalError(code, reason, requestId);
        _closeRequested = true;
        if (protocolError)
        {
            _server.CountProtocolErrorClose();
            _server.LogClose($"connection {Id} ({RemoteEndPoint}): closing: {code} ({(ushort)code}): {reason}");
        }
    }

    private static bool IsConnectionFailure(Exception e) =>
        e is IOException or SocketException or ObjectDisposedException or InvalidOperationException { Source: "System.IO.Pipelines" };

    private sealed record FinalError(ErrorCode Code, string Reason, ulong RequestId);

    /// <summary>The sink of NO_CONFIRM publishes: successes are only counted, failures are still reported.</summary>
    private sealed class NoConfirmSink(Session session) : IPublishConfirmSink
    {
        public void OnPublishConfirmed(ulong token, long offset, bool duplicate) => session.ConfirmedSilently();

        public void OnPublishFailed(ulong token, BrokerErrorCode code, string reason) => session.OnPublishFailed(token, code, reason);
    }
}
