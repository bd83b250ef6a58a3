using FastBroker.Client.Internal;
using FastBroker.Protocol;

namespace FastBroker.Client;

/// <summary>The supervisor: runs each connection and its heartbeats, reconnects after a failure, and fails what is pending when it gives up.</summary>
public sealed partial class BrokerClient
{
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
        // So after a resume of a subscription the server refused for now (Closed, NotPrimary, Timeout).
        var delay = _resumeFailed || _resubscribeRefused ? _options.ReconnectMaxDelay : _options.ReconnectInitialDelay;
        _resubscribeRefused = false;
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

                // The reader loop busy with what it read (this client's own code: completions, a slow handler
                // subscription's handler) reads nothing else meanwhile, so a PONG may be waiting in the socket: no
                // verdict while it is held, and the clocks start again no earlier than when it was last free to read.
                // Counted from the PING, a handler working for two intervals dropped a healthy connection, and the
                // next one too while the handler kept the reader busy (SlowHandlerTests).
                var readerHeld = connection.ReaderBusySince != 0;
                var readerFree = connection.ReaderFreeSince;
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

                if (ping != 0 && !readerHeld && now - Math.Max(ping, readerFree) - excused > unansweredAfter)
                {
                    connection.Abort(new TimeoutException($"no answer from {connection.Endpoint} to a PING sent {now - ping} ms ago (nothing received for {now - connection.LastReceived} ms)"));
                    return;
                }

                var received = Math.Max(connection.LastReceived, readerFree);
                if (received != judgedReceipt)
                {
                    judgedReceipt = received;
                    excusedSilence = 0;
                }

                if (late > period)
                {
                    excusedSilence += Math.Min(late, now - received);
                }

                if (!readerHeld && now - received - excusedSilence > silentAfter)
                {
                    connection.Abort(new TimeoutException($"nothing received from {connection.Endpoint} for {now - connection.LastReceived} ms{(ping == 0 ? " (no PING could be sent: the server reads nothing)" : "")}"));
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
