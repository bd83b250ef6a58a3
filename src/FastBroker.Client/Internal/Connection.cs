using System.IO.Pipelines;
using System.Net.Sockets;

namespace FastBroker.Client.Internal;

/// <summary>
/// One TCP (or TLS) connection and its pipes. The reader loop owns <see cref="Input"/>, the writer loop (and, before
/// it starts, the handshake) owns <see cref="Output"/>. <see cref="Abort"/> is the one way it ends: it records the
/// first reason, cancels both loops and closes the socket so that pending I/O fails at once.
/// </summary>
internal sealed class Connection
{
    private readonly CancellationTokenSource _cts = new();
    private readonly TaskCompletionSource<WelcomeInfo> _welcome = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Socket _socket;
    private readonly Stream _stream;
    private Exception? _failure;
    private int _aborted;
    private long _lastReceived;
    private long _lastSent;
    private byte[] _scratch = [];

    public Connection(Socket socket, Stream stream, Endpoint endpoint)
    {
        _socket = socket;
        _stream = stream;
        Endpoint = endpoint;

        // 64 KiB reads: a DELIVER_BATCH of small messages per syscall; the pipe grows for bigger frames.
        Input = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 64 * 1024, minimumReadSize: 16 * 1024, leaveOpen: true));
        Output = PipeWriter.Create(stream, new StreamPipeWriterOptions(minimumBufferSize: 64 * 1024, leaveOpen: true));
        _lastReceived = _lastSent = Environment.TickCount64;
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

    public void MarkReceived() => Volatile.Write(ref _lastReceived, Environment.TickCount64);

    public void MarkSent() => Volatile.Write(ref _lastSent, Environment.TickCount64);

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
