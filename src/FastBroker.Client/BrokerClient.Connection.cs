using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using FastBroker.Client.Internal;
using FastBroker.Net;
using FastBroker.Protocol;

namespace FastBroker.Client;

/// <summary>Connecting, the handshake, the supervisor that reconnects, and failing what is pending.</summary>
public sealed partial class BrokerClient
{
    private const ProtocolFeatures RequestedFeatures = ProtocolFeatures.IdempotentProducer | ProtocolFeatures.Batching
        | ProtocolFeatures.WorkQueues | ProtocolFeatures.HeaderFilters | ProtocolFeatures.Admin | ProtocolFeatures.InitProducer
        | ProtocolFeatures.ProducerEpoch;

    private static bool IsFatal(Exception error)
        => error is BrokerClientException { ErrorCode: ErrorCode.AuthenticationFailed or ErrorCode.UnsupportedVersion };

    /// <summary>
    /// Connects to every endpoint at once and keeps the first that completes the handshake (only the primary does: a
    /// standby refuses). One after the other, a primary that froze or whose host died (its kernel may still accept
    /// the TCP connection, or nothing answers the SYN) would cost a whole <see cref="BrokerClientOptions.ConnectTimeout"/>
    /// before the next endpoint is even tried, on every reconnect.
    /// </summary>
    private async Task<Connection> ConnectAnyAsync(CancellationToken cancellationToken)
    {
        using var race = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var outstanding = new StrongBox<int>(_endpoints.Length);
        var giveUpAt = Environment.TickCount64 + (long)_options.ConnectTimeout.TotalMilliseconds;
        var pending = _endpoints.Select(e => ConnectRetryingAsync(e, outstanding, giveUpAt, race.Token)).ToList();
        Exception? last = null, fatal = null;
        while (pending.Count > 0)
        {
            var done = await Task.WhenAny(pending).ConfigureAwait(false);
            pending.Remove(done);
            if (done.IsCompletedSuccessfully)
            {
                await race.CancelAsync().ConfigureAwait(false);
                _ = DropLateAsync(pending); // an attempt that completes anyway is closed, not leaked
                return done.Result;
            }

            var error = done.Exception?.InnerException ?? new OperationCanceledException(cancellationToken);
            if (IsFatal(error))
            {
                fatal ??= error;
            }
            else if (error is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                last = error;
            }
        }

        cancellationToken.ThrowIfCancellationRequested();
        if (fatal is not null)
        {
            throw fatal is BrokerClientException f ? CopyFailure(f) : fatal;
        }

        if (last is BrokerClientException refused)
        {
            throw CopyFailure(refused);
        }

        var tried = string.Join(", ", _endpoints);
        throw new BrokerClientException(ErrorCode.Closed, $"could not connect to {tried}: {last?.Message}", last);
    }

    /// <summary>
    /// One endpoint's attempts within <see cref="ConnectAnyAsync"/>: a refusal (a standby) or a failure is retried
    /// after the reconnect back-off while another endpoint's attempt is still pending (the standby may become primary
    /// while the old primary's endpoint hangs), until <paramref name="giveUpAt"/>.
    /// </summary>
    private async Task<Connection> ConnectRetryingAsync(Internal.Endpoint endpoint, StrongBox<int> outstanding, long giveUpAt, CancellationToken cancellationToken)
    {
        var delay = _options.ReconnectInitialDelay;
        try
        {
            while (true)
            {
                try
                {
                    return await ConnectOneAsync(endpoint, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (!IsFatal(ex) && !cancellationToken.IsCancellationRequested
                    && Volatile.Read(ref outstanding.Value) > 1 && Environment.TickCount64 + (long)delay.TotalMilliseconds < giveUpAt)
                {
                    await Task.Delay(Jittered(delay, Random.Shared.NextDouble()), cancellationToken).ConfigureAwait(false);
                    delay = delay * 2 < _options.ReconnectMaxDelay ? delay * 2 : _options.ReconnectMaxDelay;
                }
            }
        }
        finally
        {
            Interlocked.Decrement(ref outstanding.Value);
        }
    }

    private static async Task DropLateAsync(List<Task<Connection>> attempts)
    {
        foreach (var attempt in attempts)
        {
            try
            {
                var connection = await attempt.ConfigureAwait(false);
                await DropAsync(connection, null).ConfigureAwait(false);
            }
            catch (Exception)
            {
                // Cancelled or failed: nothing to close (ConnectOneAsync dropped its socket).
            }
        }
    }

    private async Task<Connection> ConnectOneAsync(Internal.Endpoint endpoint, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.ConnectTimeout);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        Connection? connection = null;
        try
        {
            Stream stream;
            if (_options.ReceiveThread && !_options.UseTls)
            {
                // Never an async operation on this socket: it stays out of the runtime's socket engine (see
                // BlockingSocketStream), so the receive thread is the only thread an arrival wakes.
                await ConnectBlockingAsync(socket, endpoint, timeout.Token).ConfigureAwait(false);
                stream = new BlockingSocketStream(socket);
            }
            else
            {
                await socket.ConnectAsync(endpoint.Host, endpoint.Port, timeout.Token).ConfigureAwait(false);
                stream = new NetworkStream(socket, ownsSocket: true);
            }

            if (_options.UseTls)
            {
                var ssl = new SslStream(stream, leaveInnerStreamOpen: false);
                stream = ssl;
                await ssl.AuthenticateAsClientAsync(
                    new SslClientAuthenticationOptions
                    {
                        TargetHost = _options.TlsTargetHost ?? endpoint.Host,
                        RemoteCertificateValidationCallback = _options.CertificateValidation,
                    },
                    timeout.Token).ConfigureAwait(false);
            }

            connection = new Connection(socket, stream, endpoint, _options.ReceiveThread, _options.UseTls, _options.MaxBatchMessages);
            connection.ReaderTask = ReadLoopAsync(connection);
            connection.StartReceiving();
            FrameWriter.WriteHello(connection.Output, 1, _clientName, _clientVersion, RequestedFeatures, _authToken, (uint)_options.MaxInboundFrameSize);
            await connection.Output.FlushAsync(timeout.Token).ConfigureAwait(false);
            connection.MarkSent();
            await connection.Welcome.WaitAsync(timeout.Token).ConfigureAwait(false);
            return connection;
        }
        catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            await DropAsync(connection, socket).ConfigureAwait(false);
            throw new TimeoutException($"connecting to {endpoint} took longer than {_options.ConnectTimeout.TotalSeconds:0.###} s", ex);
        }
        catch
        {
            await DropAsync(connection, socket).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// A synchronous connect (<see cref="BlockingConnect"/>: the descriptor stays blocking) on a thread of its own;
    /// cancelling closes the socket, which ends the connect.
    /// </summary>
    private static Task ConnectBlockingAsync(Socket socket, Internal.Endpoint endpoint, CancellationToken cancellationToken)
        => Task.Factory.StartNew(
            static state =>
            {
                var (s, e, token) = ((Socket, Internal.Endpoint, CancellationToken))state!;
                BlockingConnect.Connect(s, new DnsEndPoint(e.Host, e.Port), token);
            },
            (socket, endpoint, cancellationToken),
            CancellationToken.None,
            TaskCreationOptions.LongRunning | TaskCreationOptions.DenyChildAttach,
            TaskScheduler.Default);

    private static async Task DropAsync(Connection? connection, Socket? socket)
    {
        if (connection is null)
        {
            socket?.Dispose();
            return;
        }

        connection.Abort(new OperationCanceledException("connection attempt abandoned"));
        if (connection.ReaderTask is { } reader)
        {
            await reader.ConfigureAwait(false);
        }

        await connection.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// Makes a handshaken connection the current one: resend everything unconfirmed, resubscribe everything. False
    /// when the client is closing (the caller drops the connection).
    /// </summary>
    private bool Activate(Connection connection)
    {
        var welcome = connection.WelcomeInfo!;
        lock (_sync)
        {
            if (_closingFlag)
            {
                return false;
            }

            _generation++;
            connection.Generation = _generation;
            _connection = connection;
            Volatile.Write(ref _welcome, welcome);
            Volatile.Write(ref _serverMaxFrameSize, welcome.MaxFrameSize);
            _idempotent = (welcome.Features & ProtocolFeatures.IdempotentProducer) != 0;
            _nextRequestId = 2; // 1 was the HELLO

            // Unconfirmed publishes of the last connection are in an unknown state: resend them all, in order, with
            // their original producer sequences; the server stores each once and confirms duplicates with the
            // original offset. No request id of this connection is registered yet: any left (OnDisconnected cleared
            // them) would name another connection's request and, reused here, fail CollectBatchLocked's Add.
            _byRequestId.Clear();
            for (var p = _sendHead; p is not null; p = p.Next)
            {
                p.Resent |= p.RequestId != 0;
                p.RequestId = 0;
            }

            _nextToSend = _sendHead;

            // Resubscriptions go first: queued COMMITs name them.
            var subscriptions = _subscriptions.Values.OrderBy(s => s.Id).ToList();
            var ops = new List<ControlOp>(subscriptions.Count);
            foreach (var s in subscriptions)
            {
                if (s.PrepareResubscribe(_generation) is { } op)
                {
                    ops.Add(op);
                }
            }

            _control.InsertRange(0, ops);

            // This instance's producer epoch is resumed before anything is resent: the server binds it to the new
            // connection, so the resends carry it (and are refused, not stored, if a newer instance took the id over).
            // No publish is written until the server has answered: one answered with an error that leaves the
            // connection unbound (StorageError: the epoch could not be written) would be stored without the epoch,
            // neither fenced nor fencing, so such an answer closes the connection instead (OnServerError).
            _resumePending = false;
            if (_producerEpoch != 0 && (welcome.Features & ProtocolFeatures.ProducerEpoch) != 0)
            {
                _control.Insert(0, new ControlOp(ControlKind.InitProducer, _generation) { Offset = ProducerId, Epoch = _producerEpoch });
                _resumePending = true;
            }

            Interlocked.Increment(ref _connectCount);
        }

        _writeSignal.Set();
        Emit(BrokerClientEventKind.Connected, $"connected to {connection.Endpoint} (connection {welcome.ConnectionId}, {welcome.ServerName} {welcome.ServerVersion})");
        return true;
    }

    private async Task SuperviseAsync(Connection connection)
    {
        try
        {
            await SuperviseCoreAsync(connection).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // A bug, not a network failure: fail loudly rather than leave callers waiting forever.
            GiveUp(ex, "the client's connection supervisor failed");
        }
    }

    private async Task SuperviseCoreAsync(Connection connection)
    {
        var current = connection;
        while (true)
        {
            await RunConnectionAsync(current).ConfigureAwait(false);
            var failure = current.Failure;
            var fatal = current.IsFatal;
            OnDisconnected(current);
            await current.DisposeAsync().ConfigureAwait(false);
            if (IsClosing)
            {
                return;
            }

            Emit(BrokerClientEventKind.Disconnected, $"connection to {current.Endpoint} lost: {failure?.Message}", (failure as BrokerClientException)?.ErrorCode ?? ErrorCode.None, failure);
            if (fatal || !_options.Reconnect)
            {
                GiveUp(failure, fatal ? "the server refused this client" : "the connection was lost and reconnect is off");
                return;
            }

            var next = await ReconnectAsync(failure).ConfigureAwait(false);
            if (next is null)
            {
                return;
            }

            if (!Activate(next))
            {
                // DisposeAsync ran while this connection was being made.
                await DropAsync(next, null).ConfigureAwait(false);
                return;
            }

            current = next;
        }
    }

    private bool IsClosing
    {
        get
        {
            lock (_sync)
            {
                return _closingFlag;
            }
        }
    }

    private async Task RunConnectionAsync(Connection connection)
    {
        var writer = Task.Run(() => WriteLoopAsync(connection));
        var heartbeat = HeartbeatLoopAsync(connection);
        await connection.ReaderTask!.ConfigureAwait(false);
        connection.Abort(new IOException("the connection ended"));
        _writeSignal.Set();
        await writer.ConfigureAwait(false);
        await heartbeat.ConfigureAwait(false);
    }

    private async Task<Connection?> ReconnectAsync(Exception? failure)
    {
        var deadline = Environment.TickCount64 + (long)_options.ReconnectTimeout.TotalMilliseconds;

        // After a refused epoch resume the server is reachable but cannot take this instance's publishes yet (its disk):
        // the longest delay, not a reconnect every ReconnectInitialDelay while it lasts.
        var delay = _resumeFailed ? _options.ReconnectMaxDelay : _options.ReconnectInitialDelay;
        var last = failure;
        while (true)
        {
            var remaining = deadline - Environment.TickCount64;
            if (remaining <= 0)
            {
                GiveUp(last, $"gave up reconnecting after {_options.ReconnectTimeout.TotalSeconds:0.###} s");
                return null;
            }

            // The attempt ends with the reconnect timeout too: an endpoint that accepts the TCP connection and never
            // answers the HELLO (a frozen server) would otherwise hold the give-up for a whole ConnectTimeout after it.
            using var attempt = CancellationTokenSource.CreateLinkedTokenSource(_closing.Token);
            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(Jittered(delay, Random.Shared.NextDouble()).TotalMilliseconds, remaining)), _closing.Token).ConfigureAwait(false);
                attempt.CancelAfter(TimeSpan.FromMilliseconds(Math.Max(1, deadline - Environment.TickCount64)));
                return await ConnectAnyAsync(attempt.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_closing.IsCancellationRequested)
            {
                return null;
            }
            catch (OperationCanceledException ex) when (attempt.IsCancellationRequested)
            {
                last = new TimeoutException($"connecting to {string.Join(", ", _endpoints)} had not completed when the reconnect timeout ran out", ex);
                continue; // remaining <= 0 now: gives up
            }
            catch (Exception ex) when (IsFatal(ex))
            {
                GiveUp(ex, "the server refused this client");
                return null;
            }
            catch (Exception ex)
            {
                last = ex;
                Emit(BrokerClientEventKind.ConnectFailed, ex.Message, (ex as BrokerClientException)?.ErrorCode ?? ErrorCode.None, ex);
            }

            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, _options.ReconnectMaxDelay.Ticks));
        }
    }

    /// <summary>The wait before a reconnect attempt: between half of <paramref name="delay"/> and all of it (<paramref name="unit"/> in [0, 1)).</summary>
    internal static TimeSpan Jittered(TimeSpan delay, double unit) => TimeSpan.FromTicks(delay.Ticks / 2 + (long)(delay.Ticks / 2 * unit));

    /// <summary>Per-connection state is gone; what must survive is put back in the queues for the next connection.</summary>
    private void OnDisconnected(Connection connection)
    {
        List<ControlOp>? completed = null;
        List<ControlOp>? lost = null;
        lock (_sync)
        {
            if (_connection == connection)
            {
                _connection = null;
            }

            _byRequestId.Clear();
            _pongs.Clear();
            _heartbeatPing = false;
            foreach (var s in _ackQueue)
            {
                s.PendingAcks.Clear();
                s.AckQueued = false;
            }

            _ackQueue.Clear();

            // Requests written and not answered first (they were sent first), then the ones not written yet.
            var survivors = new List<ControlOp>();
            foreach (var op in _requests.Values.OrderBy(o => o.RequestId).Concat(_control))
            {
                switch (op.Kind)
                {
                    case ControlKind.Commit or ControlKind.Admin or ControlKind.Ping:
                        survivors.Add(op); // idempotent: ask again on the next connection
                        break;
                    case ControlKind.InitProducer:
                        (lost ??= []).Add(op); // ConnectAsync's: it fails rather than wait for a reconnect
                        break;
                    case ControlKind.Unsubscribe:
                        (completed ??= []).Add(op); // the connection took the subscription with it
                        break;
                    default:
                        break; // SUBSCRIBE, JOIN_GROUP, CREDIT, NACK: rebuilt for the next connection
                }
            }

            _requests.Clear();
            _control.Clear();
            _control.AddRange(survivors);
        }

        if (completed is not null)
        {
            foreach (var op in completed)
            {
                op.Completion?.TrySetResult(0);
            }
        }

        if (lost is not null)
        {
            foreach (var op in lost)
            {
                op.Completion?.TrySetException(InitProducerLost(connection));
            }
        }
    }

    private void GiveUp(Exception? cause, string reason)
    {
        var error = cause is BrokerClientException b && IsFatal(b)
            ? CopyFailure(b)
            : new BrokerClientException(ErrorCode.Closed, cause is null ? reason : $"{reason}: {cause.Message}", cause);
        Emit(BrokerClientEventKind.GaveUp, error.Reason, error.ErrorCode, cause);
        FailAll(error, disposing: false);
    }

    /// <summary>
    /// The end: every pending publish and request fails with <paramref name="error"/>, subscriptions end. Only
    /// called when no connection loop runs (they read the publishes' buffers without the lock).
    /// </summary>
    private void FailAll(BrokerClientException error, bool disposing)
    {
        var publishes = new List<PendingPublish>();
        var ops = new List<ControlOp>();
        List<(long Index, TaskCompletionSource Done)> waiters;
        SubscriptionState[] subscriptions;
        lock (_sync)
        {
            _failure ??= error;
            for (var p = _sendHead; p is not null; p = p.Next)
            {
                publishes.Add(p);
            }

            for (var p = _admitHead; p is not null; p = p.Next)
            {
                publishes.Add(p);
            }

            _sendHead = _sendTail = _nextToSend = _admitHead = _admitTail = null;
            _inFlight = 0;
            _byRequestId.Clear();
            ops.AddRange(_requests.Values);
            ops.AddRange(_control);
            _requests.Clear();
            _control.Clear();
            subscriptions = [.. _subscriptions.Values];
            _subscriptions = [];
            waiters = [.. _flushWaiters];
            _flushWaiters.Clear();
            Monitor.PulseAll(_sync);
        }

        foreach (var p in publishes)
        {
            p.Queue = PublishQueue.None;
            p.Previous = p.Next = null;
            p.TrySetException(CopyFailure(error));
            p.Release();
        }

        foreach (var op in ops)
        {
            op.Completion?.TrySetException(CopyFailure(error));
        }

        foreach (var s in subscriptions)
        {
            s.End(CopyFailure(error), quietly: disposing);
        }

        foreach (var (_, done) in waiters)
        {
            done.TrySetException(CopyFailure(error));
        }

        FailPendingReplies(error);
    }

    private async Task HeartbeatLoopAsync(Connection connection)
    {
        var welcome = connection.WelcomeInfo!;
        var server = welcome.HeartbeatIntervalMs > 0 ? TimeSpan.FromMilliseconds(welcome.HeartbeatIntervalMs) : (TimeSpan?)null;
        var mine = _options.HeartbeatInterval;

        // Idle for half the server's interval is enough to PING: the server allows 3 intervals of silence, so even a
        // PING delayed by a stalled machine arrives with more than 2 intervals to spare.
        var interval = (server, mine) switch
        {
            ({ } s, { } m) => s / 2 < m ? s / 2 : m,
            ({ } s, null) => s / 2,
            (null, { } m) => m,
            _ => TimeSpan.Zero,
        };
        if (interval <= TimeSpan.Zero)
        {
            return;
        }

        // A PING also goes out after an interval with nothing received (the server answers PONG at once). The server
        // says nothing unasked, so what counts is a PING that went out and got no answer (nothing at all received)
        // for two intervals, three since the last receipt: then the server or its host is gone (a frozen or
        // powered-off server sends no FIN, and its standby may already be primary). Silence since the last receipt
        // alone would count this client's own stalls against the server: a timer or writer held up by a loaded
        // machine for three intervals has sent no PING, and heard nothing because it asked nothing.
        //
        // A server that stopped reading while this client was sending (frozen, its socket buffers full) leaves the
        // writer stuck in its send: no PING goes out, so none can go unanswered. Silence since the last receipt also
        // ends the connection, after a longer bound (eight intervals, this loop's own late stretches not counted).
        var sendAfter = Math.Max(1, (long)interval.TotalMilliseconds);
        var unansweredAfter = 2 * sendAfter;
        var silentAfter = 8 * sendAfter;
        long lastPing = 0;

        // Check four times per interval: a PING goes out at most a quarter interval late.
        var period = Math.Max(5, sendAfter / 4);
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(period));
        var lastTick = Environment.TickCount64;
        long judgedPing = 0, excused = 0, judgedReceipt = connection.LastReceived, excusedSilence = 0;
        try
        {
            while (await timer.WaitForNextTickAsync(connection.Token).ConfigureAwait(false))
            {
                AtTestHook(TestHookPoint.HeartbeatTick, connection);
                var now = Environment.TickCount64;

                // A tick more than a period late: this loop did not run for that long (a stalled machine, a GC pause, a
                // busy thread pool), and a PONG may be waiting for the reader, stalled as well. The part of that stretch
                // after the PING is not counted against the server; every tick still counts at least a period, so a
                // starved client gives up after eight ticks at most.
                var late = now - lastTick - period;
                lastTick = now;
                var ping = connection.UnansweredPingSince;
                if (ping != judgedPing)
                {
                    judgedPing = ping;
                    excused = 0;
                }

                if (ping != 0 && late > period)
                {
                    excused += Math.Min(late, now - ping);
                }

                if (ping != 0 && now - ping - excused > unansweredAfter)
                {
                    connection.Abort(new TimeoutException($"no answer from {connection.Endpoint} to a PING sent {now - ping} ms ago (nothing received for {now - connection.LastReceived} ms)"));
                    return;
                }

                var received = connection.LastReceived;
                if (received != judgedReceipt)
                {
                    judgedReceipt = received;
                    excusedSilence = 0;
                }

                if (late > period)
                {
                    excusedSilence += Math.Min(late, now - received);
                }

                if (now - received - excusedSilence > silentAfter)
                {
                    connection.Abort(new TimeoutException($"nothing received from {connection.Endpoint} for {now - received} ms{(ping == 0 ? " (no PING could be sent: the server reads nothing)" : "")}"));
                    return;
                }

                if (now - connection.LastSent >= sendAfter || (now - connection.LastReceived >= sendAfter && now - lastPing >= sendAfter))
                {
                    lastPing = now;
                    lock (_sync)
                    {
                        _heartbeatPing = true;
                    }

                    _writeSignal.Set();
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
