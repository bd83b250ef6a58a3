using System.Security.Cryptography;
using System.Text;
using FastBroker.Client.Internal;
using FastBroker.Protocol;
using FastBroker.Threading;
using Microsoft.Extensions.ObjectPool;

namespace FastBroker.Client;

/// <summary>
/// A connection to a FastBroker server (docs/protocol.md): pipelined, automatically batched, idempotent
/// publishing; credit-based subscriptions; work-queue groups; request-reply; admin queries. Thread-safe. After a
/// connection loss it reconnects by itself, resends every unconfirmed publish with its original producer id and
/// sequence (the server stores each once) and resubscribes so that every subscription continues where the
/// application is, without gaps or repeats.
/// </summary>
/// <example>
/// <code>
/// await using var client = await BrokerClient.ConnectAsync(new BrokerClientOptions { Endpoints = ["127.0.0.1:7400"] });
/// long offset = await client.PublishAsync("orders.eu", payload);
/// await foreach (var m in client.SubscribeAsync("orders.*", new SubscribeOptions { Start = SubscribeStart.Earliest }, ct)) { … }
/// </code>
/// </example>
/// <remarks>
/// Two loops per connection: a writer that owns the socket's <see cref="System.IO.Pipelines.PipeWriter"/> and drains
/// everything queued into frames (many publishes per PUBLISH_BATCH, one flush per drain), and a reader that parses
/// server frames with <see cref="FrameParser.TryParseServerFrame{THandler}"/> and completes publishes, requests and
/// deliveries. A supervisor task reconnects. State shared between them is guarded by one lock, held only for
/// bookkeeping, never across I/O or user code.
/// </remarks>
public sealed partial class BrokerClient : IAsyncDisposable
{
    // Frame header + PUBLISH_BATCH fixed fields.
    private const int BatchHeaderBytes = ProtocolConstants.HeaderSize + 20;

    // Flush after this much per drain even if more is queued: 256 KiB keeps the pipe's buffer small while still
    // putting hundreds of small messages in one syscall.
    private const int FlushBudget = 256 * 1024;

    // Most a direct send (PublishAsync on the caller's thread) writes: what is queued beyond it is the writer's.
    private const int DirectSendBudget = 64 * 1024;

    private readonly BrokerClientOptions _options;
    private readonly Internal.Endpoint[] _endpoints;
    private readonly object _sync = new();
    private readonly AsyncSignal _writeSignal = new();
    private readonly ObjectPool<PendingPublish> _publishPool;
    private readonly Dictionary<ulong, PendingPublish> _byRequestId = [];
    private readonly Dictionary<ulong, ControlOp> _requests = [];
    private readonly List<ControlOp> _control = [];
    private readonly List<SubscriptionState> _ackQueue = [];
    private readonly List<ulong> _pongs = [];
    private readonly List<(long Index, TaskCompletionSource Done)> _flushWaiters = [];
    private readonly CancellationTokenSource _closing = new();
    private readonly byte[] _clientName;
    private readonly byte[] _clientVersion;
    private readonly byte[] _authToken;
    private readonly int _maxInFlight;

    // Publishes, guarded by _sync. The send list holds every publish handed over and not yet confirmed (or, fire and
    // forget, not yet written), in call order; _nextToSend is the first one not yet written on this connection.
    private PendingPublish? _sendHead;
    private PendingPublish? _sendTail;
    private PendingPublish? _nextToSend;
    private PendingPublish? _admitHead;
    private PendingPublish? _admitTail;
    private int _inFlight;
    private ulong _nextSequence;
    private ulong _producerEpoch; // under _sync: the epoch INIT_PRODUCER gave this instance (0 = none), resumed on reconnects
    private bool _resumePending; // under _sync: this connection's epoch resume is unanswered; publishes wait for it
    private volatile bool _resumeFailed; // the last connection was closed because the server could not resume the epoch
    private volatile bool _resubscribeRefused; // the last connection was closed because the server refused a resume for now
    private long _nextIndex;
    private long _writtenIndex = -1;
    private int _blockedPublishers;
    private long _duplicateConfirmations;
    private long _directSends; // _directSends and _directSendsShort are written under a connection's send role
    private long _directSendsShort;
    private long _writerPasses;

    // The connection, guarded by _sync.
    private Connection? _connection;
    private long _generation;
    private WelcomeInfo? _welcome;
    private ulong _nextRequestId;
    private bool _heartbeatPing;
    private int _serverMaxFrameSize = ProtocolConstants.MinimumMaxFrameSize;
    private bool _idempotent;
    private long _connectCount;
    private BrokerClientException? _failure;
    private bool _closingFlag;

    private volatile Dictionary<uint, SubscriptionState> _subscriptions = [];
    private uint _nextSubscriptionId;
    private Task _supervisor = Task.CompletedTask;
    private int _disposed;
    private readonly TaskCompletionSource _disposeDone = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private BrokerClient(BrokerClientOptions options)
    {
        _options = options;
        _endpoints = [.. options.Endpoints.Select(Internal.Endpoint.Parse)];
        _maxInFlight = options.MaxInFlight;
        _publishPool = new DefaultObjectPool<PendingPublish>(new DefaultPooledObjectPolicy<PendingPublish>(), Math.Min(options.MaxInFlight, 4096));
        _clientName = Encoding.UTF8.GetBytes(options.ClientName ?? string.Empty);
        _clientVersion = Encoding.UTF8.GetBytes(options.ClientVersion ?? string.Empty);
        _authToken = Encoding.UTF8.GetBytes(options.AuthToken ?? string.Empty);
        ProducerId = options.ProducerId != 0 ? options.ProducerId : NewProducerId();
    }

    /// <summary>The idempotent-producer id of this client (kept across reconnects).</summary>
    public ulong ProducerId { get; }

    /// <summary>The options the client was created with.</summary>
    public BrokerClientOptions Options => _options;

    /// <summary>True while a connection is established.</summary>
    public bool IsConnected
    {
        get
        {
            lock (_sync)
            {
                return _connection is not null;
            }
        }
    }

    /// <summary>Connections established so far: 1 after <see cref="ConnectAsync"/>, +1 per reconnect.</summary>
    public long ConnectCount => Interlocked.Read(ref _connectCount);

    /// <summary>The server-assigned id of the current (or last) connection.</summary>
    public ulong ConnectionId => Volatile.Read(ref _welcome)?.ConnectionId ?? 0;

    /// <summary>The server's name from the last WELCOME.</summary>
    public string ServerName => Volatile.Read(ref _welcome)?.ServerName ?? string.Empty;

    /// <summary>The server's version from the last WELCOME.</summary>
    public string ServerVersion => Volatile.Read(ref _welcome)?.ServerVersion ?? string.Empty;

    /// <summary>The features the server granted on the last connection.</summary>
    public ProtocolFeatures Features => Volatile.Read(ref _welcome)?.Features ?? ProtocolFeatures.None;

    /// <summary>Largest frame the server accepts (from the last WELCOME).</summary>
    public int ServerMaxFrameSize => Volatile.Read(ref _serverMaxFrameSize);

    /// <summary>The endpoint of the current (or last) connection.</summary>
    public string? Endpoint
    {
        get
        {
            lock (_sync)
            {
                return _connection?.Endpoint.ToString();
            }
        }
    }

    /// <summary>Publishes handed over and not yet confirmed (or written, fire and forget), plus those waiting for room.</summary>
    public int PendingPublishes
    {
        get
        {
            lock (_sync)
            {
                var waiting = 0;
                for (var p = _admitHead; p is not null; p = p.Next)
                {
                    waiting++;
                }

                return _inFlight + waiting;
            }
        }
    }

    /// <summary>
    /// Connects to the first endpoint that answers (TCP, TLS if asked, HELLO/WELCOME; all are tried at once) and returns
    /// the client. The attempt gets <see cref="BrokerClientOptions.ConnectTimeout"/>; an endpoint that refuses is tried
    /// again only while another's attempt is still in progress, so when every endpoint refuses it fails at once
    /// (reconnects come later).
    /// With a configured <see cref="BrokerClientOptions.ProducerId"/> it also asks the server (INIT_PRODUCER) where
    /// that id's producer sequence stands and numbers this client's publishes from there, so a restarted application
    /// reusing its id is not taken for the old process retrying. That answer must come on the same connection within
    /// another <see cref="BrokerClientOptions.ConnectTimeout"/>: like the handshake it is not retried, so a server that
    /// does not answer fails the connect at once instead of holding it for <see cref="BrokerClientOptions.ReconnectTimeout"/>.
    /// </summary>
    /// <exception cref="BrokerClientException">No endpoint answered (<see cref="ErrorCode.Closed"/>, with the last socket error inside), or the server refused the handshake (e.g. <see cref="ErrorCode.AuthenticationFailed"/>). With a configured producer id also: no answer to INIT_PRODUCER within the connect timeout (<see cref="ErrorCode.Timeout"/>), the connection lost before it (<see cref="ErrorCode.Closed"/>), or the server refused it.</exception>
    public static ValueTask<BrokerClient> ConnectAsync(BrokerClientOptions options, CancellationToken cancellationToken = default) =>
        ConnectWithTestHookAsync(options, testHook: null, cancellationToken);

    /// <summary>Tests only: <see cref="ConnectAsync(BrokerClientOptions, CancellationToken)"/> with <paramref name="testHook"/> set as the client's <see cref="TestHook"/> before it connects.</summary>
    internal static async ValueTask<BrokerClient> ConnectWithTestHookAsync(BrokerClientOptions options, Action<TestHookPoint, Connection>? testHook, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var client = new BrokerClient(options) { TestHook = testHook };
        Connection connection;
        try
        {
            connection = await client.ConnectAnyAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            client._closing.Dispose();
            throw;
        }

        _ = client.Activate(connection); // nobody can have disposed a client not yet returned
        client._supervisor = client.SuperviseAsync(connection);
        if (options.ProducerId != 0 && (connection.WelcomeInfo!.Features & ProtocolFeatures.InitProducer) != 0)
        {
            try
            {
                await client.InitProducerAsync(connection, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                await client.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }

        return client;
    }

    /// <summary>
    /// Closes the connection and fails what is still pending: unconfirmed publishes and awaited requests with
    /// <see cref="BrokerClientException"/> (<see cref="ErrorCode.Closed"/>); subscriptions and members end (their
    /// enumerations finish after the buffered messages). Does not wait for confirmations: await your publishes, or
    /// <see cref="FlushAsync"/> fire-and-forget ones, first.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            // Returns once the first call has failed what was pending, not merely once the supervisor has ended (which
            // can be before the first call has run its FailAll).
            await _disposeDone.Task.ConfigureAwait(false);
            return;
        }

        try
        {
            await DisposeCoreAsync().ConfigureAwait(false);
        }
        finally
        {
            _disposeDone.TrySetResult();
        }
    }

    private async Task DisposeCoreAsync()
    {
        Connection? connection;
        lock (_sync)
        {
            _closingFlag = true;
            connection = _connection;
        }

        _closing.Cancel();
        connection?.Abort(new ObjectDisposedException(nameof(BrokerClient)));
        _writeSignal.Set();
        try
        {
            await _supervisor.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The supervisor reports through events; disposal must not throw.
        }

        FailAll(new BrokerClientException(ErrorCode.Closed, "the client was disposed"), disposing: true);
        _closing.Dispose();
    }

    /// <summary>Waits until every publish handed over before the call has been written to the connection (not confirmed: await the publishes for that).</summary>
    public Task FlushAsync(CancellationToken cancellationToken = default)
    {
        TaskCompletionSource done;
        lock (_sync)
        {
            if (_failure is not null)
            {
                return Task.FromException(CopyFailure(_failure));
            }

            var last = _admitTail ?? _sendTail;
            if (last is null || _writtenIndex >= last.Index)
            {
                return Task.CompletedTask;
            }

            done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _flushWaiters.Add((last.Index, done));
        }

        return done.Task.WaitAsync(cancellationToken);
    }

    /// <summary>
    /// Once, before the client is handed out (no publish exists yet, so nothing it could overtake): the server's next
    /// sequence for the configured producer id becomes this client's first. Asked on <paramref name="connection"/>
    /// only (the op carries its generation: if the connection ends before the answer, the op fails instead of going to
    /// the next one, at once also when it had already ended before the op was queued) and answered within
    /// <see cref="BrokerClientOptions.ConnectTimeout"/>. Reconnects never ask again:
    /// this instance's unconfirmed publishes must be resent with the sequences they already have.
    /// </summary>
    private async Task InitProducerAsync(Connection connection, CancellationToken cancellationToken)
    {
        var withEpoch = (connection.WelcomeInfo!.Features & ProtocolFeatures.ProducerEpoch) != 0;
        var op = new ControlOp(ControlKind.InitProducer, connection.Generation, awaited: true) { Offset = ProducerId, Epoch = withEpoch ? 0 : null };
        AtTestHook(TestHookPoint.InitProducerQueueing, connection);
        QueueControl(op, boundTo: connection);
        ulong next;
        try
        {
            next = await op.Completion!.Task.WaitAsync(_options.ConnectTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException ex)
        {
            throw new BrokerClientException(ErrorCode.Timeout, $"{connection.Endpoint} did not answer INIT_PRODUCER (where producer id {ProducerId:x16} stands) within the connect timeout of {_options.ConnectTimeout.TotalSeconds:0.###} s", ex);
        }

        lock (_sync)
        {
            _nextSequence = Math.Max(_nextSequence, next);
            _producerEpoch = op.Epoch ?? 0;
        }
    }

    /// <summary>ConnectAsync's INIT_PRODUCER met the end of the connection it was asked on: ConnectAsync fails, it does not reconnect.</summary>
    private static BrokerClientException InitProducerLost(Connection? connection) => connection is null
        ? new(ErrorCode.Closed, "the connection was lost before INIT_PRODUCER could be sent")
        : new(ErrorCode.Closed, $"the connection to {connection.Endpoint} was lost before the server answered INIT_PRODUCER", connection.Failure);

    private static ulong NewProducerId()
    {
        Span<byte> bytes = stackalloc byte[8];
        ulong id;
        do
        {
            RandomNumberGenerator.Fill(bytes);
            id = BitConverter.ToUInt64(bytes);
        }
        while (id == 0);
        return id;
    }

    private static BrokerClientException CopyFailure(BrokerClientException failure)
        => new(failure.ErrorCode, failure.Reason, failure.InnerException);

    private void Emit(BrokerClientEventKind kind, string message, ErrorCode code = ErrorCode.None, Exception? exception = null, uint subscriptionId = 0, long count = 0)
    {
        var handler = _options.OnEvent;
        if (handler is null)
        {
            return;
        }

        try
        {
            handler(new BrokerClientEvent(kind, message, code, exception, subscriptionId, count));
        }
        catch (Exception)
        {
            // An event handler must not take the I/O loops down.
        }
    }

    private void ThrowIfFailed()
    {
        var failure = Volatile.Read(ref _failure);
        if (failure is not null)
        {
            ThrowHelper.ThrowFailed(CopyFailure(failure));
        }
    }

    private long CurrentGenerationLocked() => _connection is null ? 0 : _generation;
}
