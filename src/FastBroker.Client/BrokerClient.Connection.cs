using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Security.Authentication;
using FastBroker.Client.Internal;
using FastBroker.Net;
using FastBroker.Protocol;

namespace FastBroker.Client;

/// <summary>Connecting: every endpoint at once, the handshake, and making a connection the current one.</summary>
public sealed partial class BrokerClient
{
    private const ProtocolFeatures RequestedFeatures = ProtocolFeatures.IdempotentProducer | ProtocolFeatures.Batching
        | ProtocolFeatures.WorkQueues | ProtocolFeatures.HeaderFilters | ProtocolFeatures.Admin | ProtocolFeatures.InitProducer
        | ProtocolFeatures.ProducerEpoch | ProtocolFeatures.OffsetFallback;

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
        var connecting = new StrongBox<int>(0);
        var giveUpAt = Environment.TickCount64 + (long)_options.ConnectTimeout.TotalMilliseconds;
        var pending = _endpoints.Select(e => ConnectRetryingAsync(e, connecting, giveUpAt, race.Token)).ToList();
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
    /// after the reconnect back-off while another endpoint's attempt is in progress (the standby may become primary
    /// while the old primary's endpoint hangs), until <paramref name="giveUpAt"/>. <paramref name="connecting"/> counts
    /// the attempts in progress, not the endpoints still retrying: counted so, endpoints that all refused kept each
    /// other retrying for a whole <see cref="BrokerClientOptions.ConnectTimeout"/> (10 s), where one endpoint that
    /// refuses fails at once (<c>ErrorTests.Endpoints_that_all_refuse_…</c>).
    /// </summary>
    private async Task<Connection> ConnectRetryingAsync(Internal.Endpoint endpoint, StrongBox<int> connecting, long giveUpAt, CancellationToken cancellationToken)
    {
        var delay = _options.ReconnectInitialDelay;
        while (true)
        {
            Interlocked.Increment(ref connecting.Value);
            var counted = true;
            try
            {
                return await ConnectOneAsync(endpoint, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (!IsFatal(ex) && !cancellationToken.IsCancellationRequested)
            {
                Interlocked.Decrement(ref connecting.Value);
                counted = false;
                if (Volatile.Read(ref connecting.Value) == 0 || Environment.TickCount64 + (long)delay.TotalMilliseconds >= giveUpAt)
                {
                    throw;
                }
            }
            finally
            {
                if (counted)
                {
                    Interlocked.Decrement(ref connecting.Value);
                }
            }

            await Task.Delay(Jittered(delay, Random.Shared.NextDouble()), cancellationToken).ConfigureAwait(false);
            delay = delay * 2 < _options.ReconnectMaxDelay ? delay * 2 : _options.ReconnectMaxDelay;
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
                var first = new Internal.FirstBytesStream(stream);
                var ssl = new SslStream(first, leaveInnerStreamOpen: false);
                stream = ssl;
                try
                {
                    await ssl.AuthenticateAsClientAsync(
                        new SslClientAuthenticationOptions
                        {
                            TargetHost = _options.TlsTargetHost ?? endpoint.Host,
                            RemoteCertificateValidationCallback = _options.CertificateValidation,
                        },
                        timeout.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (e is AuthenticationException or IOException && first.SawPlainErrorFrame)
                {
                    // Not retried (as UnsupportedVersion): the server on that port speaks plain TCP, and will again.
                    throw new BrokerClientException(ErrorCode.UnsupportedVersion, $"{endpoint} does not speak TLS: it answered the TLS handshake with a plain FastBroker frame (a server without a certificate); connect without TLS", e);
                }
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
                if (s.PrepareResubscribe(_generation, welcome.Features) is { } op)
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
}
