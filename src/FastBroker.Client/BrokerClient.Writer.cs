using System.Buffers;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using FastBroker.Client.Internal;
using FastBroker.Net;
using FastBroker.Protocol;

namespace FastBroker.Client;

/// <summary>
/// The writer loop: the task that writes to a connection. Each wake-up drains everything queued (PONGs, PINGs,
/// control frames, ACKs, then publishes as PUBLISH_BATCH frames) and flushes once per 256 KiB, so a busy client sends
/// many frames per syscall and an idle one sends a lone publish at once (TCP_NODELAY, no timer). A lone publish may
/// instead go out on its caller's thread (<see cref="BrokerClientOptions.DirectSend"/>): the send role on the
/// connection makes sure only one of them writes at a time, in order.
/// </summary>
public sealed partial class BrokerClient
{
    /// <remarks>
    /// Ends holding the connection's send role, for good: the supervisor tears the connection down (fails or hands
    /// its publishes to the next connection, whose CONFIRMs release them) only after this task has ended, so no direct
    /// sender can still be encoding publishes that the teardown releases (it would read a pooled entry whose buffer
    /// went back to the pool, and throw out of <c>PublishAsync</c>), and none can start on this connection again.
    /// </remarks>
    private async Task WriteLoopAsync(Connection connection)
    {
        var output = connection.Output;
        var holdsRole = false;
        try
        {
            while (!connection.IsAborted)
            {
                await _writeSignal.WaitAsync().ConfigureAwait(false);

                // The send role for the whole pass, flush included: a direct sender (PublishAsync on its own thread)
                // holds it only for one non-blocking send, so this waits microseconds at most.
                AcquireSendRole(connection);
                holdsRole = true;
                bool more;
                do
                {
                    if (connection.IsAborted)
                    {
                        return;
                    }

                    var unsent = connection.Unsent.WrittenCount;
                    var unsentLastIndex = connection.UnsentLastIndex;
                    if (unsent > 0)
                    {
                        output.Write(connection.Unsent.WrittenSpan); // what a direct send left over goes first
                        connection.Unsent.ResetWrittenCount();
                        connection.UnsentLastIndex = -1;
                    }

                    more = Drain(connection, output, FlushBudget, direct: false, out var written, out var lastIndex);
                    if (written + unsent == 0)
                    {
                        break;
                    }

                    var result = await output.FlushAsync(connection.Token).ConfigureAwait(false);
                    if (result.IsCanceled || result.IsCompleted)
                    {
                        return;
                    }

                    connection.MarkSent();
                    lastIndex = Math.Max(lastIndex, unsentLastIndex);
                    if (lastIndex >= 0)
                    {
                        OnWritten(lastIndex);
                    }
                }
                while (more);

                holdsRole = false;
                Volatile.Write(ref connection.SendRole, 0);
                Interlocked.Increment(ref _writerPasses);
                AtTestHook(TestHookPoint.WriterPassEnded, connection);
            }
        }
        catch (Exception ex)
        {
            connection.Abort(ex);
        }
        finally
        {
            if (!holdsRole)
            {
                // Ended between passes: a direct sender may have taken the role meanwhile and be mid-batch (preempted,
                // say). Wait for it (one non-blocking send at most), then keep the role.
                AtTestHook(TestHookPoint.WriterWaitsForSendRole, connection);
                AcquireSendRole(connection);
            }
        }
    }

    /// <summary>Tests only (<see cref="TestHooks"/>): called at each <see cref="TestHookPoint"/>, on the thread that reached it.</summary>
    internal Action<TestHookPoint, Connection>? TestHook { get; set; }

    /// <summary>Free unless the test switch is on: <see cref="TestHooks.Enabled"/> is a JIT-time constant.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void AtTestHook(TestHookPoint point, Connection connection)
    {
        if (TestHooks.Enabled)
        {
            TestHook?.Invoke(point, connection);
        }
    }

    private static void AcquireSendRole(Connection connection)
    {
        var spin = default(SpinWait);
        while (Interlocked.CompareExchange(ref connection.SendRole, 1, 0) != 0)
        {
            spin.SpinOnce();
        }
    }

    /// <summary>
    /// PublishAsync's direct send, on the calling thread: when the send role is free, writes everything queued (up to
    /// 64 KiB) with one non-blocking send. True when it all went; false when the writer loop must take over (the role
    /// was busy, more is queued, or the kernel took only part, whose rest waits in <see cref="Connection.Unsent"/>).
    /// </summary>
    private bool TrySendDirect(Connection connection)
    {
        if (Interlocked.CompareExchange(ref connection.SendRole, 1, 0) != 0)
        {
            return false;
        }

        try
        {
            AtTestHook(TestHookPoint.DirectSendRoleTaken, connection);
            if (connection.IsAborted || connection.Unsent.WrittenCount > 0)
            {
                return false;
            }

            var buffer = connection.DirectBuffer;
            buffer.ResetWrittenCount();
            var more = Drain(connection, buffer, DirectSendBudget, direct: true, out var written, out var lastIndex);
            if (written == 0)
            {
                return !more;
            }

            var bytes = buffer.WrittenSpan;
            var sent = SocketSendNow.TrySend(connection.Socket, bytes);
            connection.MarkSent();
            if (sent < bytes.Length)
            {
                connection.Unsent.Write(bytes[sent..]);
                connection.UnsentLastIndex = lastIndex;
                _directSendsShort++;
                return false;
            }

            if (lastIndex >= 0)
            {
                OnWritten(lastIndex);
            }

            _directSends++;
            return !more;
        }
        finally
        {
            Volatile.Write(ref connection.SendRole, 0);
        }
    }

    /// <summary>
    /// Under the lock: <paramref name="connection"/> is still the current one. A sender checks it at every lock it
    /// takes. The writer loop ends only once it holds the send role for good (<see cref="WriteLoopAsync"/>), so the
    /// teardown and the reconnect that hands the send list to the next connection never overlap a sender of this one;
    /// the check keeps that true even so: a sender given another connection's publishes would give them its request
    /// ids and write them to a dead socket, never to be confirmed.
    /// </summary>
    private bool IsCurrentLocked(Connection connection) => connection.Generation == _generation && _connection == connection;

    /// <summary>Writes what is queued, up to the budget; true when more is waiting. Send role only.</summary>
    private bool Drain(Connection connection, IBufferWriter<byte> output, int budget, bool direct, out long written, out long lastIndex)
    {
        written = 0;
        lastIndex = -1;
        lock (_sync)
        {
            if (!IsCurrentLocked(connection))
            {
                return false;
            }

            foreach (var id in _pongs)
            {
                written += FrameWriter.WritePong(output, id);
            }

            _pongs.Clear();
            if (_heartbeatPing)
            {
                _heartbeatPing = false;
                written += FrameWriter.WritePing(output, 0);
                connection.PingInFlight = true;
            }

            foreach (var op in _control)
            {
                written += WriteControlLocked(output, op);
            }

            _control.Clear();
            foreach (var s in _ackQueue)
            {
                written += WriteAcksLocked(output, s);
            }

            _ackQueue.Clear();
        }

        var batch = connection.Batch;
        while (written < budget)
        {
            int count;
            int capacity;
            ulong firstRequestId;
            bool idempotent;
            lock (_sync)
            {
                if (!IsCurrentLocked(connection))
                {
                    return false;
                }

                count = CollectBatchLocked(batch, connection.Refused, out capacity, out firstRequestId);
                idempotent = _idempotent;
                if (connection.Refused.Count > 0)
                {
                    AdmitWaitingLocked(); // they left room: nothing else may be in flight to confirm and make some
                }
            }

            if (connection.Refused.Count > 0)
            {
                FailRefused(connection.Refused);
            }

            if (count == 0)
            {
                return false;
            }

            if (direct)
            {
                AtTestHook(TestHookPoint.DirectSendBatchCollected, connection);
            }

            lastIndex = batch[count - 1].Index;
            written += EncodeBatch(output, batch, count, capacity, firstRequestId, idempotent);
            if (batch[0].FireAndForget)
            {
                // Nothing comes back for a stored fire-and-forget message: done once written.
                lock (_sync)
                {
                    // Unless a reconnect made them the next connection's again (Activate rewinds the send list): its
                    // sender writes and retires them, and may have done so already.
                    if (IsCurrentLocked(connection))
                    {
                        for (var i = 0; i < count; i++)
                        {
                            var p = batch[i];
                            UnlinkLocked(p);
                            _inFlight--;
                            p.Release();
                        }

                        AdmitWaitingLocked();
                    }
                }
            }

            Array.Clear(batch, 0, count);
        }

        return true;
    }

    private int WriteControlLocked(IBufferWriter<byte> output, ControlOp op)
    {
        var s = op.Subscription;
        switch (op.Kind)
        {
            case ControlKind.Subscribe:
                if (op.Generation != _generation)
                {
                    return 0;
                }

                op.RequestId = RegisterLocked(op);
                return FrameWriter.WriteSubscribe(output, op.RequestId, s!.Id, s.PatternUtf8, op.Value, op.Start, op.Offset, s.DurableUtf8, op.Fallback, s.Filters);
            case ControlKind.JoinGroup:
                if (op.Generation != _generation)
                {
                    return 0;
                }

                op.RequestId = RegisterLocked(op);
                return FrameWriter.WriteJoinGroup(output, op.RequestId, s!.Id, s.GroupUtf8, s.PatternUtf8, op.Value, s.VisibilityTimeoutMs, s.MaxDeliveries);
            case ControlKind.Unsubscribe:
                return WriteUnsubscribeLocked(output, op);
            case ControlKind.Commit:
                op.RequestId = RegisterLocked(op);
                return FrameWriter.WriteCommit(output, op.RequestId, s!.Id, op.Offset, op.Text);
            case ControlKind.Credit:
                return op.Generation == _generation ? FrameWriter.WriteCredit(output, 0, s!.Id, op.Value) : 0;
            case ControlKind.Nack:
                return op.Generation == _generation
                    ? FrameWriter.WriteNack(output, 0, s!.Id, new DeliveryTag(op.Offset, op.Value), op.Requeue, op.DelayMs, op.Text)
                    : 0;
            case ControlKind.Admin:
                op.RequestId = RegisterLocked(op);
                return FrameWriter.WriteAdmin(output, op.RequestId, op.Query, op.Text);
            case ControlKind.InitProducer:
                if (op.Generation != _generation)
                {
                    // ConnectAsync's question, queued just as its connection ended: it fails ConnectAsync (which
                    // checked that this connection's server grants InitProducer) rather than go to the next server.
                    op.Completion?.TrySetException(InitProducerLost(null));
                    return 0;
                }

                op.RequestId = RegisterLocked(op);
                return op.Epoch is { } epoch
                    ? FrameWriter.WriteInitProducer(output, op.RequestId, op.Offset, epoch)
                    : FrameWriter.WriteInitProducer(output, op.RequestId, op.Offset);
            case ControlKind.Ping:
                op.RequestId = RegisterLocked(op);
                op.SentTimestamp = Stopwatch.GetTimestamp();
                return FrameWriter.WritePing(output, op.RequestId);
            default:
                return 0;
        }
    }

    /// <summary>UNSUBSCRIBE, after the ACKs a group member queued before it was disposed (ControlOp.Acks).</summary>
    private int WriteUnsubscribeLocked(IBufferWriter<byte> output, ControlOp op)
    {
        var id = op.Subscription!.Id;
        var written = 0;
        if (op.Acks is { } acks)
        {
            for (var i = 0; i < acks.Length; i += ProtocolConstants.MaxBatchCount)
            {
                written += FrameWriter.WriteAck(output, 0, id, acks.AsSpan(i, Math.Min(ProtocolConstants.MaxBatchCount, acks.Length - i)));
            }
        }

        op.RequestId = RegisterLocked(op);
        return written + FrameWriter.WriteUnsubscribe(output, op.RequestId, id);
    }

    private ulong RegisterLocked(ControlOp op)
    {
        var id = _nextRequestId++;
        _requests.Add(id, op);
        return id;
    }

    private int WriteAcksLocked(IBufferWriter<byte> output, SubscriptionState member)
    {
        var tags = member.PendingAcks;
        member.AckQueued = false;
        var written = 0;
        if (member.Generation == _generation && !member.Ended)
        {
            var span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(tags);
            for (var i = 0; i < span.Length; i += ProtocolConstants.MaxBatchCount)
            {
                var chunk = span.Slice(i, Math.Min(ProtocolConstants.MaxBatchCount, span.Length - i));
                written += FrameWriter.WriteAck(output, 0, member.Id, chunk);
            }
        }

        tags.Clear();
        return written;
    }

    private void OnWritten(long lastIndex)
    {
        List<TaskCompletionSource>? done = null;
        lock (_sync)
        {
            if (lastIndex <= _writtenIndex)
            {
                return;
            }

            _writtenIndex = lastIndex;
            for (var i = _flushWaiters.Count - 1; i >= 0; i--)
            {
                if (_flushWaiters[i].Index <= lastIndex)
                {
                    (done ??= []).Add(_flushWaiters[i].Done);
                    _flushWaiters.RemoveAt(i);
                }
            }
        }

        if (done is not null)
        {
            foreach (var d in done)
            {
                d.TrySetResult();
            }
        }
    }
}
