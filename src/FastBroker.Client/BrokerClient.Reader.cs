using System.Buffers;
using System.Diagnostics;
using FastBroker.Client.Internal;
using FastBroker.Protocol;

namespace FastBroker.Client;

/// <summary>The reader loop: parses server frames and completes what they answer.</summary>
public sealed partial class BrokerClient
{
    private async Task ReadLoopAsync(Connection connection)
    {
        var input = connection.Input;
        var handler = new ServerFrameHandler(this, connection);
        try
        {
            while (true)
            {
                var result = await input.ReadAsync(connection.Token).ConfigureAwait(false);
                connection.MarkReceived();
                var buffer = result.Buffer;
                if (!ParseFrames(ref buffer, ref handler, out var error))
                {
                    throw new BrokerClientException(error.Code, $"the server sent a bad frame: {error}");
                }

                input.AdvanceTo(buffer.Start, buffer.End);
                connection.MarkHandled();
                if (result.IsCompleted || result.IsCanceled)
                {
                    connection.Abort(new IOException($"{connection.Endpoint} closed the connection"));
                    return;
                }
            }
        }
        catch (Exception ex)
        {
            connection.Abort(ex);
        }
    }

    private bool ParseFrames(ref ReadOnlySequence<byte> buffer, ref ServerFrameHandler handler, out FrameError error)
    {
        while (FrameParser.TryParseServerFrame(ref buffer, ref handler, _options.MaxInboundFrameSize, out error))
        {
        }

        return !error.IsError;
    }

    internal void OnServerPing(ulong requestId)
    {
        lock (_sync)
        {
            _pongs.Add(requestId);
        }

        _writeSignal.Set();
    }

    internal void OnPong(ulong requestId)
    {
        if (requestId == 0)
        {
            return; // a heartbeat
        }

        ControlOp? op;
        lock (_sync)
        {
            if (!_requests.Remove(requestId, out op))
            {
                return;
            }
        }

        op.Completion?.TrySetResult((ulong)Stopwatch.GetElapsedTime(op.SentTimestamp).Ticks);
    }

    internal void OnOk(ulong requestId, ulong value, ulong epoch)
    {
        ControlOp? op;
        lock (_sync)
        {
            if (!_requests.Remove(requestId, out op))
            {
                return;
            }
        }

        switch (op.Kind)
        {
            case ControlKind.Subscribe or ControlKind.JoinGroup:
                op.Subscription!.OnSubscribed(value, op);
                break;
            case ControlKind.Commit:
                op.Subscription!.MarkCommitted(op.TopicName!, (long)op.Offset);
                op.Completion?.TrySetResult(value);
                break;
            case ControlKind.InitProducer when op.Epoch is not null:
                op.Epoch = epoch;
                if (op.Completion is null)
                {
                    ResumeAnswered(op);
                }

                op.Completion?.TrySetResult(value);
                break;
            default:
                op.Completion?.TrySetResult(value);
                break;
        }
    }

    /// <summary>A reconnect's epoch resume was answered (bound, or refused for good): the resends may go.</summary>
    private void ResumeAnswered(ControlOp op)
    {
        lock (_sync)
        {
            if (op.Generation != _generation)
            {
                return;
            }

            _resumePending = false;
        }

        _resumeFailed = false;
        _writeSignal.Set();
    }

    internal void OnAdminResult(ulong requestId, string json)
    {
        ControlOp? op;
        lock (_sync)
        {
            if (!_requests.Remove(requestId, out op))
            {
                return;
            }
        }

        op.Result = json;
        op.Completion?.TrySetResult(0);
    }

    internal void OnServerError(Connection connection, ulong requestId, ErrorCode code, string reason, uint subscriptionId, bool close, bool subscriptionEnded)
    {
        var error = new BrokerClientException(code, reason);
        if (close)
        {
            // The server closes the socket after this; the reason is what the supervisor reports.
            connection.SetServerClose(error, IsFatal(error));
        }

        ControlOp? op = null;
        if (requestId != 0)
        {
            lock (_sync)
            {
                _requests.Remove(requestId, out op);
            }

            if (op is null && TryFailPublish(requestId, error))
            {
                return;
            }
        }

        if (op is not null)
        {
            switch (op.Kind)
            {
                case ControlKind.Subscribe or ControlKind.JoinGroup when op.Subscription!.Ready.Task.IsCompletedSuccessfully && IsRetriableResumeRefusal(code):
                    // A resume after a reconnect the server cannot do now (its broker is closing, it is not the primary):
                    // the subscription is kept, and this connection, on which it is not subscribed, is closed, so the
                    // next one resumes it and every other subscription where it is (with the longest back-off).
                    _resubscribeRefused = true;
                    connection.Abort(new BrokerClientException(code, $"resuming subscription {op.Subscription.Id} ({op.Subscription.Pattern}) was refused for now: {reason}"));
                    break;
                case ControlKind.Subscribe or ControlKind.JoinGroup:
                    // A first subscribe fails its caller; a resume refused for good ends the subscription with the
                    // server's code and reason (its reader throws them; SubscriptionEnded), the others going on.
                    EndSubscription(op.Subscription!, error);
                    if (op.Subscription!.Kind == SubscriptionKind.Inbox)
                    {
                        OnInboxEnded(op.Subscription, connection.Generation, error);
                    }

                    break;
                case ControlKind.Unsubscribe when code == ErrorCode.UnknownSubscription:
                    op.Completion?.TrySetResult(0); // already gone: that is what was asked
                    break;
                case ControlKind.InitProducer when op.Completion is null && code is not (ErrorCode.ProducerFenced or ErrorCode.InvalidArgument):
                    // A reconnect's resume the server could not do now (StorageError: the epoch could not be written).
                    // The connection stays unbound there, and publishes sent on it would be stored without the epoch:
                    // close it and reconnect (with the longest back-off), so they go out only once the epoch is bound.
                    _resumeFailed = true;
                    connection.Abort(new BrokerClientException(code, $"resuming producer epoch {op.Epoch} failed: {reason}"));
                    break;
                case ControlKind.InitProducer when op.Completion is null:
                    // A reconnect's resume, refused: a newer instance took the producer id over. The publishes resent
                    // after it are refused one by one (ProducerFenced); this says why once.
                    ResumeAnswered(op);
                    Emit(BrokerClientEventKind.ServerError, reason, code, error);
                    break;
                default:
                    op.Completion?.TrySetException(error);
                    break;
            }

            return;
        }

        if (subscriptionEnded && subscriptionId != 0 && _subscriptions.TryGetValue(subscriptionId, out var s))
        {
            EndSubscription(s, error);
            if (s.Kind == SubscriptionKind.Inbox)
            {
                OnInboxEnded(s, connection.Generation, error);
            }

            return;
        }

        if (!close)
        {
            // With CLOSE the connection ends: the Disconnected event carries the reason.
            Emit(BrokerClientEventKind.ServerError, reason, code, error, subscriptionId);
        }
    }

    internal void OnDeliver(Connection connection, uint subscriptionId, uint deliveryCount, ulong offset, long timestampNs, ReadOnlySpan<byte> topic, in ReadOnlySequence<byte> block, int keyLength, in HeaderBlock headers, int payloadLength)
    {
        if (!_subscriptions.TryGetValue(subscriptionId, out var s))
        {
            return; // unsubscribed: deliveries written before the OK are discarded
        }

        if (s.Sink is not null)
        {
            DeliverToHandler(connection, s, deliveryCount, offset, timestampNs, topic, block, keyLength, headers, payloadLength);
            return;
        }

        var message = s.Accept(connection.Generation, deliveryCount, offset, timestampNs, topic, block, keyLength, headers, payloadLength, out var credit, out var overflow);
        if (credit > 0)
        {
            QueueControl(new ControlOp(ControlKind.Credit, connection.Generation, s) { Value = credit });
        }

        if (overflow)
        {
            Emit(BrokerClientEventKind.ServerError, $"subscription {subscriptionId} received more messages than its credit; one was dropped", ErrorCode.None, subscriptionId: subscriptionId, count: 1);
        }
        else if (message is not null && s.Kind == SubscriptionKind.Inbox)
        {
            OnReply(message);
        }
    }

    /// <summary>A handler subscription: the handler consumes the message here, on the reader loop, then credit goes back.</summary>
    private void DeliverToHandler(Connection connection, SubscriptionState s, uint deliveryCount, ulong offset, long timestampNs, ReadOnlySpan<byte> topic, in ReadOnlySequence<byte> block, int keyLength, in HeaderBlock headers, int payloadLength)
    {
        if (s.TryAcceptForHandler(connection.Generation, offset, topic, out var position, out var credit))
        {
            ReadOnlySpan<byte> bytes;
            if (block.IsSingleSegment)
            {
                bytes = block.FirstSpan;
            }
            else
            {
                var scratch = connection.GetScratch((int)block.Length);
                block.CopyTo(scratch);
                bytes = scratch;
            }

            var view = new ClientMessageView(s, position, connection.Generation, topic, offset, timestampNs, deliveryCount, bytes, keyLength, (int)headers.Entries.Length, headers.Count, payloadLength);
            if (s.Sink!.Deliver(in view) is { } error)
            {
                OnHandlerFailed(s, position, offset, error);
            }

            if (s.DurableName is not null)
            {
                s.MarkConsumed(position, offset); // only commits read it: one lock per message less for the others
            }
        }

        if (credit > 0 && !s.Ended)
        {
            QueueControl(new ControlOp(ControlKind.Credit, connection.Generation, s) { Value = credit });
        }
    }

    private void OnHandlerFailed(SubscriptionState s, TopicPosition position, ulong offset, Exception error)
        => Emit(BrokerClientEventKind.HandlerFailed, $"the handler of subscription {s.Id} ({s.Pattern}) threw on {position.Name}@{offset}: {error.Message}", ErrorCode.None, error, s.Id, 1);

    internal void OnDropped(uint subscriptionId, ulong droppedCount, ulong resumeOffset)
        => Emit(BrokerClientEventKind.MessagesDropped, $"subscription {subscriptionId} missed {droppedCount} message(s) (a transient topic's ring overran it, or retention deleted them from a persistent topic); resuming at {resumeOffset}", ErrorCode.None, subscriptionId: subscriptionId, count: (long)droppedCount);

    /// <summary>
    /// Queues a control frame for the writer, or fails it at once when the client has failed or is disposed (no writer
    /// will ever take it again, so an awaited op would hang), or when it is <paramref name="boundTo"/> a connection that
    /// has ended (with that connection's error, <see cref="InitProducerLost"/>).
    /// </summary>
    private void QueueControl(ControlOp op, Connection? boundTo = null)
    {
        BrokerClientException? failure;
        var lost = false;
        lock (_sync)
        {
            failure = _failure;
            if (failure is null)
            {
                // An op for one connection only (ConnectAsync's INIT_PRODUCER) whose connection has ended: OnDisconnected,
                // which fails such ops, has already run, and no writer of that connection will take it.
                lost = boundTo is not null && !IsCurrentLocked(boundTo);
                if (!lost)
                {
                    _control.Add(op);
                }
            }
        }

        if (failure is not null)
        {
            op.Completion?.TrySetException(CopyFailure(failure));
            return;
        }

        if (lost)
        {
            op.Completion?.TrySetException(InitProducerLost(boundTo));
            return;
        }

        _writeSignal.Set();
    }

    private void EndSubscription(SubscriptionState s, BrokerClientException error)
    {
        RemoveSubscription(s);
        if (s.End(error, quietly: false) && s.Ready.Task.IsCompletedSuccessfully)
        {
            Emit(BrokerClientEventKind.SubscriptionEnded, $"subscription {s.Id} ({s.Pattern}) ended: {error.Reason}", error.ErrorCode, error, s.Id);
        }
    }

    private void RemoveSubscription(SubscriptionState s)
    {
        lock (_sync)
        {
            if (_subscriptions.ContainsKey(s.Id))
            {
                var copy = new Dictionary<uint, SubscriptionState>(_subscriptions);
                copy.Remove(s.Id);
                _subscriptions = copy;
            }
        }
    }
}
