using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using FastBroker.Net;
using FastBroker.Protocol;

namespace FastBroker.Client.Internal;

/// <summary>
/// One TCP (or TLS) connection and its pipes. The reader loop owns <see cref="Input"/> (fed by the connection's
/// receive thread, or by the runtime's socket engine), the writer loop (and, before it starts, the handshake) owns
/// <see cref="Output"/>; the socket's send side belongs to whoever holds <see cref="SendRole"/>.
/// <see cref="Abort"/> is the one way it ends: it records the first reason, cancels both loops and closes the socket
/// so that pending I/O fails at once.
/// </summary>
internal sealed class Connection
{
    private readonly CancellationTokenSource _cts = new();
    private readonly TaskCompletionSource<WelcomeInfo> _welcome = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Socket _socket;
    private readonly Stream _stream;
    private readonly Pipe? _receivePipe;
    private Exception? _failure;
    private int _aborted;
    private long _lastReceived;
    private long _lastSent;
    private long _pingSentAt;
    private long _readerBusySince;
    private long _readerFreeSince;
    private byte[] _scratch = [];

    public Connection(Socket socket, Stream stream, Endpoint endpoint, bool receiveThread, bool tls, int maxBatchMessages)
    {
        Batch = new PendingPublish[maxBatchMessages];
        _socket = socket;
        _stream = stream;
        Endpoint = endpoint;
        CanSendDirect = !tls && SocketSendNow.Supported;

        // 64 KiB reads: a DELIVER_BATCH of small messages per syscall; the pipe grows for bigger frames.
        if (receiveThread)
        {
            // The receive thread writes what it reads into the pipe and flushes, and the reader loop's continuation
            // runs inline in that flush (on the receive thread). It never pauses: the reader consumes every whole
            // frame at once, so the pipe only ever holds the part of a frame still arriving (up to the largest frame).
            _receivePipe = new Pipe(new PipeOptions(
                readerScheduler: PipeScheduler.Inline,
                writerScheduler: PipeScheduler.Inline,
                pauseWriterThreshold: 0,
                minimumSegmentSize: 64 * 1024,
                useSynchronizationContext: false));
            Input = _receivePipe.Reader;
        }
        else
        {
            Input = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 64 * 1024, minimumReadSize: 16 * 1024, leaveOpen: true));
        }

        Output = PipeWriter.Create(stream, new StreamPipeWriterOptions(minimumBufferSize: 64 * 1024, leaveOpen: true));
        _lastReceived = _lastSent = Environment.TickCount64;
    }

    public Socket Socket => _socket;

    /// <summary>Plain TCP where a non-blocking send is available: a publishing thread may write to the socket itself (holding the send role).</summary>
    public bool CanSendDirect { get; }

    /// <summary>
    /// 0 = free, 1 = held by the writer loop (for a whole pass, flush included) or by a thread sending directly.
    /// Whoever holds it is the only one writing to the socket and the only one using the client's batch buffer. The
    /// writer loop ends holding it for good (after waiting for a direct sender to finish), so a connection's teardown,
    /// which comes after the writer loop, never overlaps a direct sender still encoding its publishes.
    /// </summary>
    public int SendRole;

    /// <summary>Bytes a direct send left over (the kernel took only part); the writer loop sends them first. Send role only.</summary>
    public ArrayBufferWriter<byte> Unsent { get; } = new();

    /// <summary>The call-order index of the last publish in <see cref="Unsent"/> (for FlushAsync), or -1.</summary>
    public long UnsentLastIndex { get; set; } = -1;

    /// <summary>Reader loop only: publishes a CONFIRM answered, completed once the client's lock is released (reused).</summary>
    public List<(PendingPublish Publish, long Offset, ErrorCode Status)> Confirmed { get; } = [];

    /// <summary>
    /// The publishes of the PUBLISH_BATCH being encoded (send role only). Per connection, not per client: a direct
    /// sender still finishing on a connection that a reconnect replaced holds that connection's send role while the new
    /// connection's writer holds its own.
    /// </summary>
    public PendingPublish[] Batch { get; }

    /// <summary>
    /// Publishes this connection cannot carry (too large for its server's frames; a retry on a connection without
    /// IdempotentProducer), taken off the send list and failed once the lock is released (send role only).
    /// </summary>
    public List<(PendingPublish Publish, BrokerClientException Error)> Refused { get; } = [];

    /// <summary>The direct sender's frame buffer (send role only), reused.</summary>
    public ArrayBufferWriter<byte> DirectBuffer { get; } = new(4096);

    /// <summary>
    /// Starts the receive thread (with <c>receiveThread</c>): it blocks in the stream's read and hands each arrival to
    /// the pipe, until the connection ends. A no-op otherwise.
    /// </summary>
    public void StartReceiving()
    {
        if (_receivePipe is null)
        {
            return;
        }

        var thread = new Thread(static state => ((Connection)state!).ReceiveLoop())
        {
            Name = "fastbroker-client-rx",
            IsBackground = true,
        };
        thread.Start(this);
    }

    private void ReceiveLoop()
    {
        var writer = _receivePipe!.Writer;
        Exception? failure = null;
        try
        {
            while (!IsAborted)
            {
                // poll first (one wake-up, by the kernel), then read what is there; the timeout only re-checks
                // IsAborted in case the socket was torn down without a shutdown that wakes the poll.
                if (!SocketPoll.WaitReadable(_socket, 500))
                {
                    continue;
                }

                var memory = writer.GetMemory(16 * 1024);
                var n = _stream.Read(memory.Span);
                if (n == 0)
                {
                    break; // the server closed the connection
                }

                writer.Advance(n);
                var flush = writer.FlushAsync();
                var result = flush.IsCompleted ? flush.Result : flush.AsTask().GetAwaiter().GetResult();
                if (result.IsCompleted)
                {
                    break; // the reader loop is done
                }
            }
        }
        catch (Exception ex)
        {
            failure = ex;
        }

        try
        {
            writer.Complete(failure);
        }
        catch (InvalidOperationException)
        {
            // A flush was still in progress when the connection was torn down.
        }
    }

    public Endpoint Endpoint { get; }

    public PipeReader Input { get; }

    public PipeWriter Output { get; }

    /// <summary>Set when the connection becomes the client's current one; deliveries carry it.</summary>
    public long Generation { get; set; }

    public CancellationToken Token => _cts.Token;

    public bool IsAborted => Volatile.Read(ref _aborted) != 0;

    /// <summary>Why it ended (the first reason given to <see cref="Abort"/>).</summary>
    public Exception? Failure => Volatile.Read(ref _failure);

    /// <summary>The server refused this client for good (authentication, version): do not reconnect.</summary>
    public bool IsFatal { get; private set; }

    public Task<WelcomeInfo> Welcome => _welcome.Task;

    public WelcomeInfo? WelcomeInfo { get; private set; }

    public Task? ReaderTask { get; set; }

    public long LastReceived => Volatile.Read(ref _lastReceived);

    public long LastSent => Volatile.Read(ref _lastSent);

    /// <summary>
    /// When the oldest heartbeat PING that nothing has been received since went out (<see cref="Environment.TickCount64"/>),
    /// or 0. The server speaks to an idle client only to answer its PINGs, so silence counts from here, not from the
    /// last receipt: a client whose own timer or writer was stalled has not asked, and is owed no answer.
    /// </summary>
    public long UnansweredPingSince
    {
        get
        {
            var ping = Volatile.Read(ref _pingSentAt);
            return ping != 0 && LastReceived < ping ? ping : 0;
        }
    }

    /// <summary>Send role only: the bytes being sent carry a heartbeat PING (<see cref="MarkSent"/> notes when it went).</summary>
    public bool PingInFlight { get; set; }

    /// <summary>
    /// When the reader loop began handling what it last read (<see cref="Environment.TickCount64"/>), or 0 while it
    /// waits for the socket. Handling runs this client's own code (completions, inline continuations, handler
    /// subscriptions' handlers, which may be slow): meanwhile whatever the server sent, its PONGs included, waits
    /// unread, so the heartbeat does not count that stretch as the server's silence.
    /// </summary>
    public long ReaderBusySince => Volatile.Read(ref _readerBusySince);

    /// <summary>When the reader loop last finished handling what it read (<see cref="Environment.TickCount64"/>), or 0.</summary>
    public long ReaderFreeSince => Volatile.Read(ref _readerFreeSince);

    /// <summary>Reader loop: something arrived, and handling it begins.</summary>
    public void MarkReceived()
    {
        var now = Environment.TickCount64;
        Volatile.Write(ref _lastReceived, now);
        Volatile.Write(ref _readerBusySince, now);
    }

    /// <summary>Reader loop: what arrived is handled; it waits for the socket again.</summary>
    public void MarkHandled()
    {
        Volatile.Write(ref _readerFreeSince, Environment.TickCount64);
        Volatile.Write(ref _readerBusySince, 0);
    }

    /// <summary>Send role only, after a send; starts the silence clock if it carried the first unanswered PING.</summary>
    public void MarkSent()
    {
        var now = Environment.TickCount64;
        Volatile.Write(ref _lastSent, now);
        if (PingInFlight)
        {
            PingInFlight = false;
            if (UnansweredPingSince == 0)
            {
                Volatile.Write(ref _pingSentAt, now);
            }
        }
    }

    /// <summary>
    /// Reader loop only: a buffer of at least <paramref name="length"/> bytes for a message block that straddles pipe
    /// segments, so handler subscriptions can see it as spans. Grown (to a power of two) and then reused, so in steady
    /// state it costs nothing; at most <see cref="BrokerClientOptions.MaxInboundFrameSize"/>.
    /// </summary>
    public Span<byte> GetScratch(int length)
    {
        if (_scratch.Length < length)
        {
            _scratch = new byte[Math.Max(4096, (int)Math.Min(System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)length), (ulong)Array.MaxLength))];
        }

        return _scratch.AsSpan(0, length);
    }

    public void SetWelcome(WelcomeInfo info)
    {
        WelcomeInfo = info;
        _welcome.TrySetResult(info);
    }

    /// <summary>The server sent ERROR with CLOSE: remember it as the reason, before the socket closes.</summary>
    public void SetServerClose(BrokerClientException error, bool fatal)
    {
        IsFatal |= fatal;
        Interlocked.CompareExchange(ref _failure, error, null);
        _welcome.TrySetException(error);
    }

    public void Abort(Exception reason)
    {
        Interlocked.CompareExchange(ref _failure, reason, null);
        if (Interlocked.Exchange(ref _aborted, 1) != 0)
        {
            return;
        }

        _welcome.TrySetException(_failure!);
        try
        {
            _cts.Cancel();
        }
        catch (AggregateException)
        {
        }

        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }

        _socket.Dispose();
    }

    /// <summary>After both loops have ended.</summary>
    public async ValueTask DisposeAsync()
    {
        Abort(new ObjectDisposedException(nameof(Connection)));
        // The socket is closed: completing the writer may try to flush into it, and disposing an SslStream may try
        // to send close_notify. Both fail in ways nobody can act on.
        try
        {
            await Input.CompleteAsync().ConfigureAwait(false);
            await Output.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception)
        {
        }

        try
        {
            await _stream.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception)
        {
        }

        _cts.Dispose();
    }
}
