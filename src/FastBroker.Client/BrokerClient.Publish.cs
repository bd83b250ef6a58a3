using FastBroker.Client.Internal;
using FastBroker.Protocol;

namespace FastBroker.Client;

/// <summary>Publishing: admission under the in-flight limit, and the send list.</summary>
public sealed partial class BrokerClient
{
    /// <summary>Publishes and completes with the message's topic offset once the server confirms it.</summary>
    /// <inheritdoc cref="PublishAsync(string, ReadOnlySpan{byte}, PublishOptions?, CancellationToken)"/>
    public ValueTask<long> PublishAsync(string topic, ReadOnlySpan<byte> payload, CancellationToken cancellationToken = default)
        => PublishAsync(topic, payload, null, cancellationToken);

    /// <summary>
    /// Publishes and completes with the message's topic offset once the server confirms it per the durability. The
    /// message is copied before this returns (the caller may reuse its buffer) and queued in call order: the writer
    /// loop batches whatever is queued into PUBLISH_BATCH frames. Beyond
    /// <see cref="BrokerClientOptions.MaxInFlight"/> unconfirmed publishes the task waits for room, still in call
    /// order. Every publish carries this client's producer id and the next producer sequence, and survives
    /// reconnects: it is resent until confirmed, and stored once.
    /// </summary>
    /// <param name="topic">The topic (1–255 UTF-8 bytes; its syntax is checked by the server).</param>
    /// <param name="payload">The payload; copied.</param>
    /// <param name="options">Key, headers, TTL, durability; null = none and the client's durability.</param>
    /// <param name="cancellationToken">
    /// Stops the wait. A publish still waiting for room is withdrawn; one already queued may still be stored (its
    /// offset is then lost to the caller).
    /// </param>
    /// <returns>The offset of the message in its topic.</returns>
    /// <exception cref="BrokerClientException">The server refused the message (the CONFIRM status: e.g. <see cref="ErrorCode.UnknownTopic"/>, <see cref="ErrorCode.MessageTooLarge"/>; for <see cref="ErrorCode.NotReplicated"/> the message is on the primary: retry it with <see cref="RetryAsync"/> and <see cref="BrokerClientException.Unconfirmed"/>, not with a new publish), or the client was disposed or gave up reconnecting (<see cref="ErrorCode.Closed"/>).</exception>
    /// <exception cref="ArgumentException">The topic (not valid UTF-16 text, or not 1 to 255 UTF-8 bytes), key or TTL cannot be carried by the wire format; nothing was sent.</exception>
    public ValueTask<long> PublishAsync(string topic, ReadOnlySpan<byte> payload, PublishOptions? options, CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<long>(cancellationToken);
        }

        return Submit(Rent(topic, payload, options, fireAndForget: false), cancellationToken);
    }

    /// <summary>
    /// Sends again a publish that failed with <see cref="ErrorCode.NotReplicated"/> (written on the primary, not
    /// acknowledged by the standby in time), with its original producer id and sequence: the broker stores it at most
    /// once. If it holds the message already, the retry is confirmed with the original offset once the standby has
    /// that offset (the DUPLICATE confirmation waits for replication like the original did), or fails with
    /// <see cref="ErrorCode.NotReplicated"/> again (with a new <see cref="BrokerClientException.Unconfirmed"/> to retry
    /// later). If it does not (a failover to a standby that never received it) the retry is stored, after whatever
    /// was published since. Queued in call order like any publish and resent after reconnects.
    /// </summary>
    /// <remarks>
    /// Only over a connection that granted <see cref="ProtocolFeatures.IdempotentProducer"/>: without it a retry would
    /// go out without its producer id and sequence, as a new message, and be stored a second time. So it is refused,
    /// before anything is sent, when the current (or last) connection did not grant the feature, and a retry queued
    /// before a reconnect to such a server fails instead of being sent (both <see cref="ErrorCode.UnexpectedFrame"/>,
    /// like any use of a feature the server did not grant).
    /// </remarks>
    /// <param name="publish">From <see cref="BrokerClientException.Unconfirmed"/>.</param>
    /// <param name="cancellationToken">As for <see cref="PublishAsync(string, ReadOnlySpan{byte}, PublishOptions?, CancellationToken)"/>.</param>
    /// <returns>The offset of the message in its topic (the original one when it was stored before).</returns>
    /// <exception cref="ArgumentException"><paramref name="publish"/> carries another producer id than this client's.</exception>
    /// <exception cref="BrokerClientException">As for <c>PublishAsync</c>; <see cref="ErrorCode.InvalidArgument"/> when the sequence is older than the broker's deduplication window; <see cref="ErrorCode.UnexpectedFrame"/> when the connection does not grant <see cref="ProtocolFeatures.IdempotentProducer"/> (nothing was sent).</exception>
    public ValueTask<long> RetryAsync(UnconfirmedPublish publish, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(publish);
        if (publish.ProducerId != ProducerId)
        {
            throw new ArgumentException($"The publish carries producer id {publish.ProducerId:x16}, this client {ProducerId:x16}: only the same producer id is deduplicated.", nameof(publish));
        }

        if ((Features & ProtocolFeatures.IdempotentProducer) == 0)
        {
            throw ThrowHelper.RetryNotIdempotent(); // sent as a new message it could be stored twice
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<long>(cancellationToken);
        }

        var p = _publishPool.Get();
        p.Initialize(_publishPool, publish.Topic, publish.TopicLength, publish.Payload.Span, publish.Key.Span, publish.EncodedHeaders, publish.TtlMs, publish.Durability, fireAndForget: false, _options.InlineCompletions);
        p.Sequence = publish.ProducerSequence;
        p.FixedSequence = true;
        return Submit(p, cancellationToken);
    }

    /// <summary>Hands a confirmable publish over: the send list (or admission), then a direct send or the writer.</summary>
    private ValueTask<long> Submit(PendingPublish p, CancellationToken cancellationToken)
    {
        BrokerClientException? error;
        Connection? direct = null;
        lock (_sync)
        {
            error = _failure is { } f ? CopyFailure(f) : CheckSizeLocked(p);
            if (error is null)
            {
                EnqueueLocked(p);

                // A lone publish (nothing else unconfirmed) goes out on this thread; with others in flight the writer
                // loop batches it with them.
                if (_inFlight == 1 && p.Queue == PublishQueue.Sending && _options.DirectSend && _connection is { CanSendDirect: true } c)
                {
                    direct = c;
                }
            }
        }

        if (error is not null)
        {
            p.Discard();
            return ValueTask.FromException<long>(error);
        }

        if (direct is null || !TrySendDirect(direct))
        {
            _writeSignal.Set();
        }

        if (cancellationToken.CanBeCanceled)
        {
            p.RegisterCancellation(this, cancellationToken);
        }

        return new ValueTask<long>(p, p.Version);
    }

    /// <summary>
    /// Publishes without waiting for a confirmation (NO_CONFIRM): the message is copied and queued, and the server
    /// sends nothing back unless it fails, which is reported through <see cref="BrokerClientOptions.OnEvent"/>
    /// (<see cref="BrokerClientEventKind.PublishFailed"/>). Not idempotent and not resent after a reconnect once
    /// written. Blocks the calling thread while <see cref="BrokerClientOptions.MaxInFlight"/> is reached.
    /// </summary>
    /// <exception cref="BrokerClientException">The client was disposed or gave up (<see cref="ErrorCode.Closed"/>), or the message exceeds the server's maximum frame size.</exception>
    /// <exception cref="ArgumentException">As for <c>PublishAsync</c>: the topic (not valid UTF-16 text, or not 1 to 255 UTF-8 bytes), key or TTL.</exception>
    public void Publish(string topic, ReadOnlySpan<byte> payload, PublishOptions? options = null)
    {
        var p = Rent(topic, payload, options, fireAndForget: true);
        lock (_sync)
        {
            while (true)
            {
                var error = _failure is { } f ? CopyFailure(f) : CheckSizeLocked(p);
                if (error is not null)
                {
                    p.Discard();
                    throw error;
                }

                if (_admitHead is null && _inFlight < _maxInFlight)
                {
                    EnqueueLocked(p);
                    break;
                }

                _blockedPublishers++;
                try
                {
                    Monitor.Wait(_sync);
                }
                finally
                {
                    _blockedPublishers--;
                }
            }
        }

        _writeSignal.Set();
    }

    internal void CancelPublish(PendingPublish p, CancellationToken token)
    {
        var withdrawn = false;
        lock (_sync)
        {
            if (p.Queue == PublishQueue.Admission)
            {
                RetargetFlushWaitersLocked(p, p.Previous ?? _sendTail);
                if (p.Previous is null)
                {
                    _admitHead = p.Next;
                }
                else
                {
                    p.Previous.Next = p.Next;
                }

                if (p.Next is null)
                {
                    _admitTail = p.Previous;
                }
                else
                {
                    p.Next.Previous = p.Previous;
                }

                p.Previous = p.Next = null;
                p.Queue = PublishQueue.None;
                withdrawn = true;
            }
        }

        p.TrySetException(new OperationCanceledException("the publish was canceled", token));
        if (withdrawn)
        {
            p.Release();
        }
    }

    /// <summary>
    /// Under the lock, before <paramref name="p"/> is unlinked: it leaves without being written (withdrawn while it
    /// waited for room, or refused before sending), so a <see cref="FlushAsync"/> waiting for it (the last publish
    /// handed over before the flush) waits for <paramref name="before"/>, the publish before it in call order, instead;
    /// or is done when there is none or that one is written already. Before, it waited for an index nothing would
    /// write. The waiters' continuations run asynchronously, so completing them here runs no code under the lock.
    /// </summary>
    private void RetargetFlushWaitersLocked(PendingPublish p, PendingPublish? before)
    {
        for (var i = _flushWaiters.Count - 1; i >= 0; i--)
        {
            var (index, done) = _flushWaiters[i];
            if (index != p.Index)
            {
                continue;
            }

            if (before is null || before.Index <= _writtenIndex)
            {
                _flushWaiters.RemoveAt(i);
                done.TrySetResult();
            }
            else
            {
                _flushWaiters[i] = (before.Index, done);
            }
        }
    }

    private PendingPublish Rent(string topic, ReadOnlySpan<byte> payload, PublishOptions? options, bool fireAndForget)
    {
        var topicLength = Utf8Names.CheckedByteCount(topic, nameof(topic));
        options ??= PublishOptions.Default;
        var key = options.Key.Span;
        if (key.Length > ProtocolConstants.MaxShortBytesLength)
        {
            ThrowHelper.ThrowTooLong(nameof(options.Key), key.Length, ProtocolConstants.MaxShortBytesLength);
        }

        var ttl = options.Ttl;
        if (ttl < TimeSpan.Zero || ttl.TotalMilliseconds > uint.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(options), ttl, "Ttl must be 0 to 2^32 − 1 ms.");
        }

        var headers = options.Headers is { } h ? h.Encoded : default;
        var p = _publishPool.Get();
        p.Initialize(_publishPool, topic, topicLength, payload, key, headers, (uint)ttl.TotalMilliseconds, options.Durability ?? _options.Durability, fireAndForget, _options.InlineCompletions);
        return p;
    }

    private BrokerClientException? CheckSizeLocked(PendingPublish p)
    {
        var frame = (long)BatchHeaderBytes + p.EntrySize;
        return frame > _serverMaxFrameSize ? ThrowHelper.MessageTooLarge(p.Topic, frame, _serverMaxFrameSize) : null;
    }

    private void EnqueueLocked(PendingPublish p)
    {
        p.Index = _nextIndex++;
        if (_admitHead is null && _inFlight < _maxInFlight)
        {
            AppendSendLocked(p);
            return;
        }

        p.Queue = PublishQueue.Admission;
        p.Previous = _admitTail;
        p.Next = null;
        if (_admitTail is null)
        {
            _admitHead = p;
        }
        else
        {
            _admitTail.Next = p;
        }

        _admitTail = p;
    }

    private void AppendSendLocked(PendingPublish p)
    {
        if (!p.FireAndForget && !p.FixedSequence)
        {
            p.Sequence = _nextSequence++;
        }

        p.Queue = PublishQueue.Sending;
        p.RequestId = 0;
        p.Previous = _sendTail;
        p.Next = null;
        if (_sendTail is null)
        {
            _sendHead = p;
        }
        else
        {
            _sendTail.Next = p;
        }

        _sendTail = p;
        _nextToSend ??= p;
        _inFlight++;
    }

    private void UnlinkLocked(PendingPublish p)
    {
        if (_nextToSend == p)
        {
            _nextToSend = p.Next;
        }

        if (p.Previous is null)
        {
            _sendHead = p.Next;
        }
        else
        {
            p.Previous.Next = p.Next;
        }

        if (p.Next is null)
        {
            _sendTail = p.Previous;
        }
        else
        {
            p.Next.Previous = p.Previous;
        }

        p.Previous = p.Next = null;
        p.Queue = PublishQueue.None;
    }

    /// <summary>Room was freed: admit waiting publishes in call order, wake blocked fire-and-forget callers.</summary>
    private void AdmitWaitingLocked()
    {
        var admitted = false;
        while (_admitHead is { } p && _inFlight < _maxInFlight)
        {
            _admitHead = p.Next;
            if (_admitHead is null)
            {
                _admitTail = null;
            }
            else
            {
                _admitHead.Previous = null;
            }

            AppendSendLocked(p);
            admitted = true;
        }

        if (_blockedPublishers > 0 && _inFlight < _maxInFlight)
        {
            Monitor.PulseAll(_sync);
        }

        if (admitted)
        {
            _writeSignal.Set();
        }
    }

    /// <summary>The current connection's socket, or null between connections (tests).</summary>
    internal System.Net.Sockets.Socket? CurrentSocket
    {
        get
        {
            lock (_sync)
            {
                return _connection?.Socket;
            }
        }
    }

    /// <summary>Direct sends that wrote everything queued (<see cref="BrokerClientOptions.DirectSend"/>; tests, diagnostics).</summary>
    internal long DirectSends => Volatile.Read(ref _directSends);

    /// <summary>Direct sends the kernel took only part of (the writer loop sent the rest; tests, diagnostics).</summary>
    internal long DirectSendsShort => Volatile.Read(ref _directSendsShort);

    /// <summary>Passes of the writer loop that have ended (tests).</summary>
    internal long WriterPasses => Interlocked.Read(ref _writerPasses);
}
