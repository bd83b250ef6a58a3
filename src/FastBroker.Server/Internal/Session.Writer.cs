using FastBroker.Protocol;

namespace FastBroker.Server.Internal;

/// <summary>
/// The write side: the one task that owns the PipeWriter. Each pass drains control replies, then confirmations
/// (merged into ranges), then deliveries for consumers with credit, then flushes; it sleeps on the session signal.
/// </summary>
internal sealed partial class Session
{
    // 256 KiB of deliveries per pass before a flush: a slow socket pushes back through FlushAsync quickly, and the
    // other work (confirmations, replies) gets its turn.
    private const long PassBudget = 256 * 1024;

    // 256 ranges per CONFIRM (6 KiB): merging usually makes one range per pass, so this is rarely reached.
    private const int ConfirmCapacity = ProtocolConstants.HeaderSize + 4 + (256 * ProtocolConstants.ConfirmRangeSize);

    private ConfirmEntry _carry;
    private bool _hasCarry;
    private int _nextConsumer;

    private async Task WriteLoopAsync()
    {
        var output = _output!;
        AcquireSend();
        try
        {
            while (true)
            {
                var exiting = _writerExit;
                long bytes = 0;
                long frames = 0;
                var unsent = WriteUnsent();
                var more = WritePass(deliver: !exiting, ref bytes, ref frames);
                if (exiting)
                {
                    WriteFinal(ref bytes, ref frames);
                }

                if (bytes > 0 || unsent)
                {
                    _server.CountOut(frames, bytes);
                    Volatile.Write(ref _flushingSince, Environment.TickCount64); // the idle timer watches a flush that does not end
                    var flush = await output.FlushAsync().ConfigureAwait(false);
                    Volatile.Write(ref _flushingSince, 0);
                    _writerProgress.Set();
                    if (flush.IsCompleted || flush.IsCanceled)
                    {
                        break;
                    }
                }

                if (exiting)
                {
                    break;
                }

                if (!more)
                {
                    // Everything written is flushed: the journaler may send confirmations itself while this sleeps.
                    ReleaseSend();
                    await _signal.WaitAsync().ConfigureAwait(false);
                    AcquireSend();
                }
            }
        }
        catch (Exception e) when (IsConnectionFailure(e) || e is OperationCanceledException)
        {
        }
        catch (Exception e)
        {
            LogError("writing", e);
        }
        finally
        {
            // The writer keeps the send role for good: nothing is written after its last frame.
            if (!_writerExit)
            {
                // The socket failed under the writer: end the reader too.
                _closeRequested = true;
                CancelRead();
            }

            _writerProgress.Set();

            try
            {
                await output.CompleteAsync().ConfigureAwait(false);
            }
            catch (Exception)
            {
            }
        }
    }

    /// <summary>Test seam: runs in each writer pass after the replies and confirmations, before the deliveries.</summary>
    internal Action<Session>? BeforeDeliveriesHook { get; set; }

    /// <summary>The open subscriptions and memberships (tests).</summary>
    internal int ConsumerCount => Volatile.Read(ref _consumerList).Length;

    /// <summary>One pass; true when there may be more to write at once (budget used up or consumers still have data).</summary>
    private bool WritePass(bool deliver, ref long bytes, ref long frames)
    {
        // The consumers are read before the replies are drained: a SUBSCRIBE's (or JOIN_GROUP's) OK is queued before
        // its consumer is added, so each consumer read here has its OK among the replies written just below, and no
        // delivery precedes its OK. Read after the drain, a consumer added meanwhile got deliveries in this pass and
        // its OK only in the next (SubscribeTests.The_OK_of_a_SUBSCRIBE_precedes_its_first_delivery_…).
        var consumers = Volatile.Read(ref _consumerList);
        DrainControl(ref bytes, ref frames);
        DrainConfirms(ref bytes, ref frames);
        BeforeDeliveriesHook?.Invoke(this);
        return deliver && _encoder is not null && WriteDeliveries(consumers, ref bytes, ref frames);
    }

    private void DrainConfirms(ref long bytes, ref long frames) => DrainConfirms(_output!, int.MaxValue, ref bytes, ref frames);

    /// <summary>
    /// Writes queued confirmations as CONFIRM frames (merged into ranges) to <paramref name="output"/>, at most
    /// <paramref name="room"/> bytes (<see cref="int.MaxValue"/>: no limit, the pipe). True when the queue is drained.
    /// Only the holder of the send role calls it.
    /// </summary>
    private bool DrainConfirms(System.Buffers.IBufferWriter<byte> output, int room, ref long bytes, ref long frames)
    {
        const int MinConfirm = ProtocolConstants.HeaderSize + 4 + ProtocolConstants.ConfirmRangeSize;
        var taken = 0;
        var written = 0;
        var drained = true;
        while (_hasCarry || !_confirms.IsEmpty)
        {
            int capacity;
            if (room == int.MaxValue)
            {
                // As much of the pipe's current segment as is left (at least one range), so a CONFIRM does not start a
                // new pooled segment when a few ranges would fit in the old one.
                capacity = Math.Clamp(output.GetSpan(MinConfirm).Length, MinConfirm, Math.Min(ConfirmCapacity, _peerMaxFrame));
            }
            else if (room - written < MinConfirm)
            {
                drained = false;
                break;
            }
            else
            {
                capacity = Math.Min(room - written, Math.Min(ConfirmCapacity, _peerMaxFrame));
            }

            var writer = new ConfirmWriter(output, capacity);
            var full = false;
            while (true)
            {
                // Dequeue-then-carry instead of TryPeek: peeking pins a ConcurrentQueue segment and makes the queue
                // allocate new ones; dequeuing keeps it a reused ring.
                if (!_hasCarry)
                {
                    if (!_confirms.TryDequeue(out _carry))
                    {
                        break;
                    }

                    _hasCarry = true;
                    taken++;
                }

                if (!writer.TryAdd(_carry.RequestId, _carry.Status, _carry.Offset, _carry.Duplicate))
                {
                    full = true;
                    break;
                }

                _hasCarry = false;
            }

            var n = writer.Complete();
            if (n > 0)
            {
                bytes += n;
                written += n;
                frames++;
            }

            if (!full)
            {
                break;
            }
        }

        if (taken > 0)
        {
            Interlocked.Add(ref _queuedConfirms, -taken);
        }

        return drained && !_hasCarry && _confirms.IsEmpty;
    }

    private bool WriteDeliveries(Consumer[] consumers, ref long bytes, ref long frames)
    {
        if (consumers.Length == 0)
        {
            return false;
        }

        var encoder = _encoder!;
        encoder.Bytes = 0;
        encoder.Frames = 0;
        var more = false;
        var start = _nextConsumer++ % consumers.Length;
        for (var i = 0; i < consumers.Length; i++)
        {
            if (encoder.Bytes >= PassBudget)
            {
                more = true;
                break;
            }

            var c = consumers[(start + i) % consumers.Length];
            var max = c.Available;
            if (max <= 0 || c.Closed)
            {
                continue;
            }

            var n = 0;
            var full = false;
            string? failure = null;
            ErrorCode failureCode = default;
            lock (c.Gate)
            {
                if (c.Closed)
                {
                    continue;
                }

                try
                {
                    _options.TestHook?.Invoke("deliver", Id);
                    n = c.Deliver(encoder, max, out full);
                }
                catch (BrokerException e) when (e.Code == BrokerErrorCode.DamagedRecord)
                {
                    // The topic logged the damaged record once; each subscription reaching it is told, not logged.
                    failureCode = ErrorCode.DamagedRecord;
                    failure = $"subscription {c.Id} ended: {e.Message}";
                }
                catch (Exception e)
                {
                    // Mapped as a request's failure is: storage → StorageError, shortage → ResourceExhausted, a bug → Internal;
                    // but a delivery handles no input of the client's, so an ArgumentException is a bug too.
                    failureCode = MapException(e, $"delivering to subscription {c.Id}", clientInput: false);
                    failure = $"subscription {c.Id} ended: {e.Message}";
                }
            }

            if (encoder.TooLarge)
            {
                failureCode = ErrorCode.MessageTooLarge;
                failure = encoder.TooLargeReason;
            }

            if (failure is not null)
            {
                EndConsumer(c, failureCode, failure, ref bytes, ref frames);
                continue;
            }

            if (full)
            {
                more = true;
            }
        }

        bytes += encoder.Bytes;
        frames += encoder.Frames;
        return more;
    }

    /// <summary>The server ends a subscription: ERROR with SUBSCRIPTION_ENDED and the subscription id (writer thread).</summary>
    private void EndConsumer(Consumer consumer, ErrorCode code, string reason, ref long bytes, ref long frames)
    {
        lock (_consumersGate)
        {
            if (_consumers.TryGetValue(consumer.Id, out var current) && ReferenceEquals(current, consumer))
            {
                _consumers.Remove(consumer.Id);
                _consumerList = [.. _consumers.Values];
            }
        }

        consumer.Close();
        bytes += FrameWriter.WriteError(_output!, 0, code, reason, ErrorFlags.SubscriptionEnded, consumer.Id, maxReasonBytes: ReasonRoom);
        frames++;
    }

    /// <summary>The last frame before the socket closes: an ERROR with CLOSE, after every queued reply and confirmation.</summary>
    private void WriteFinal(ref long bytes, ref long frames)
    {
        if (_final is not { } f)
        {
            return;
        }

        bytes += FrameWriter.WriteError(_output!, f.RequestId, f.Code, f.Reason, ErrorFlags.CloseConnection, maxReasonBytes: ReasonRoom);
        frames++;
    }
}
