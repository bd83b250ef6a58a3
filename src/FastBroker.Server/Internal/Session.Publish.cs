using System.Buffers;
using System.Collections.Concurrent;
using FastBroker.Protocol;

namespace FastBroker.Server.Internal;

/// <summary>
/// PUBLISH and PUBLISH_BATCH: one claim of the broker's input ring per frame (split only when a batch is larger than
/// <c>Broker.MaxPublishClaim</c>), the message bytes copied from the read buffer straight into the ring slots, and
/// the session as the confirm sink. Zero allocations per message.
/// </summary>
internal sealed partial class Session
{
    private const string ForbiddenReason = "this token may not publish to the topic";
    private const string SequenceWrapsReason = "PUBLISH_BATCH: firstProducerSequence + the entry's index is past the last producer sequence, 2^64 - 2: not stored";

    private readonly ConcurrentQueue<ConfirmEntry> _confirms = new();
    private long _pendingConfirms;
    private long _queuedConfirms;
    private int _batchResume;

    // INIT_PRODUCER with an epoch binds the id to that epoch on this connection; its publishes carry it (0 = unbound).
    // One binding is the usual case (a client has one producer id), more go to the dictionary.
    // A binding answered later (a new epoch waiting for the standby) is made on a pool thread: while one is pending
    // (counted on the reader's thread before it starts), the reader reads the bindings under _bindGate too.
    private ulong _boundProducer;
    private ulong _boundEpoch;
    private Dictionary<ulong, ulong>? _moreBound;
    private readonly object _bindGate = new();

    // The last client producer id mapped to the token's scope, and the broker's id for it (reader thread).
    private ulong _scopedClientId;
    private ulong _scopedProducerId;
    private int _bindsPending;

    internal void OnPublish(in FrameHeader header, in PublishFrame frame)
    {
        if (!EnsureOpen(header) || (frame.ProducerId != 0 && !EnsureGranted(header, ProtocolFeatures.IdempotentProducer, "a producerId")))
        {
            return;
        }

        IPublishConfirmSink sink = frame.NoConfirm ? _noConfirmSink : this;
        PublishClaim claim;
        try
        {
            if (!_broker.TryBeginPublish(1, out claim))
            {
                _blockedClaim = 1;
                return;
            }
        }
        catch (BrokerException e)
        {
            FailLocally(header.RequestId, e.Code);
            return;
        }

        Interlocked.Increment(ref _pendingConfirms);
        try
        {
            var producerId = ScopedProducerId(frame.ProducerId);
            var parameters = new PublishParameters(frame.TtlMs, (PublishDurability)frame.Durability, producerId, producerId == 0 ? 0 : frame.ProducerSequence, EpochOf(producerId));
            Add(ref claim, frame.Topic, frame.Key, frame.Headers.Entries, frame.Payload, parameters, sink, header.RequestId);
            claim.Commit();
        }
        catch
        {
            Abandon(ref claim, 1);
            throw;
        }
    }

    internal void OnPublishBatch(in FrameHeader header, in PublishBatchFrame frame)
    {
        if (!EnsureOpen(header) || (frame.ProducerId != 0 && !EnsureGranted(header, ProtocolFeatures.IdempotentProducer, "a producerId")))
        {
            return;
        }

        IPublishConfirmSink sink = frame.NoConfirm ? _noConfirmSink : this;
        var durability = (PublishDurability)frame.Durability;
        var maxClaim = Math.Max(1, _broker.MaxPublishClaim);
        var entries = frame.GetEnumerator();

        // A batch interrupted by back-pressure is parsed again from the start: skip what was already claimed.
        var index = _batchResume;
        for (var i = 0; i < index; i++)
        {
            entries.MoveNext();
        }

        while (index < frame.Count)
        {
            var n = Math.Min(maxClaim, frame.Count - index);
            PublishClaim claim;
            try
            {
                if (!_broker.TryBeginPublish(n, out claim))
                {
                    _blockedClaim = n;
                    _batchResume = index;
                    return;
                }
            }
            catch (BrokerException e)
            {
                for (var k = index; k < frame.Count; k++)
                {
                    FailLocally(header.RequestId + (ulong)k, e.Code);
                }

                break;
            }

            Interlocked.Add(ref _pendingConfirms, n);
            try
            {
                var producerId = ScopedProducerId(frame.ProducerId);
                var epoch = EpochOf(producerId);
                for (var k = 0; k < n; k++)
                {
                    entries.MoveNext();
                    var entry = entries.Current;
                    var i = (ulong)(index + k);
                    if (frame.ProducerId != 0 && i > ulong.MaxValue - frame.FirstProducerSequence)
                    {
                        // Its sequence would pass 2^64 - 1 and wrap to 0, 1…: numbers of other messages of the producer.
                        claim.AddFailed(BrokerErrorCode.InvalidArgument, SequenceWrapsReason, sink, header.RequestId + i);
                        continue;
                    }

                    var parameters = new PublishParameters(entry.TtlMs, durability, producerId, producerId == 0 ? 0 : frame.FirstProducerSequence + i, epoch);
                    Add(ref claim, entry.Topic, entry.Key, entry.Headers.Entries, entry.Payload, parameters, sink, header.RequestId + i);
                }

                claim.Commit();
            }
            catch
            {
                Abandon(ref claim, n);
                throw;
            }

            index += n;
        }

        _batchResume = 0;
    }

    /// <summary>
    /// INIT_PRODUCER: a producer (re)starting with an id it may have used before learns the sequence to continue from,
    /// so its new messages are not deduplicated against the old process's (docs/protocol.md §6).
    /// </summary>
    internal void OnInitProducer(in FrameHeader header, ulong producerId, ulong? epoch)
    {
        if (!EnsureOpen(header) || !EnsureGranted(header, ProtocolFeatures.InitProducer, "INIT_PRODUCER")
            || (epoch is not null && !EnsureGranted(header, ProtocolFeatures.ProducerEpoch, "an INIT_PRODUCER epoch")))
        {
            return;
        }

        if (producerId == 0)
        {
            SendError(header.RequestId, ErrorCode.InvalidArgument, "INIT_PRODUCER: producerId 0 is not an idempotent producer");
            return;
        }

        producerId = ScopedProducerId(producerId);
        if (epoch is not { } asked)
        {
            _options.TestHook?.Invoke("init-producer", Id);
            ulong next;
            try
            {
                next = _broker.NextProducerSequence(producerId);
            }
            catch (BrokerException e)
            {
                SendError(header.RequestId, ToWire(e.Code), $"INIT_PRODUCER: {e.Message}"); // NotPrimary: a deposed primary of a pair
                return;
            }

            SendOk(header.RequestId, next);
            return;
        }

        ValueTask<(ulong NextSequence, ulong Epoch)> init;
        try
        {
            init = _broker.InitProducerAsync(producerId, asked);
        }
        catch (BrokerException e) when (e.Code == BrokerErrorCode.ProducerFenced)
        {
            // Bound all the same: this connection's publishes with the id carry the replaced epoch and are refused one by
            // one (CONFIRM ProducerFenced), never stored as unfenced ones.
            Bind(producerId, asked);
            SendError(header.RequestId, ErrorCode.ProducerFenced, $"INIT_PRODUCER: {e.Message}");
            return;
        }
        catch (BrokerException e)
        {
            // An epoch never given (InvalidArgument), or a new one that could not be written to disk (StorageError): not
            // bound, so this connection's publishes with the id carry no epoch (neither fenced nor fencing), as a client
            // without the feature.
            SendError(header.RequestId, ToWire(e.Code), $"INIT_PRODUCER: {e.Message}");
            return;
        }

        if (init.IsCompletedSuccessfully)
        {
            var (next, given) = init.Result;
            Bind(producerId, given);
            SendOk(header.RequestId, next, given);
        }
        else
        {
            Interlocked.Increment(ref _bindsPending);
            _ = AnswerInitProducerAsync(header.RequestId, producerId, init);
        }
    }

    /// <summary>
    /// A new epoch on the primary of a pair in a standby ack mode: answered once the standby holds it, and bound only
    /// then (a client publishes with it after the answer); a failure (NotReplicated) leaves the connection unbound, as
    /// StorageError does.
    /// </summary>
    private async Task AnswerInitProducerAsync(ulong requestId, ulong producerId, ValueTask<(ulong NextSequence, ulong Epoch)> init)
    {
        try
        {
            var (next, given) = await init.ConfigureAwait(false);
            Bind(producerId, given);
            SendOk(requestId, next, given);
        }
        catch (BrokerException e)
        {
            SendError(requestId, ToWire(e.Code), $"INIT_PRODUCER: {e.Message}");
        }
        finally
        {
            Interlocked.Decrement(ref _bindsPending); // after the binding: a reader that reads 0 sees it
        }
    }

    /// <summary>
    /// The broker's producer id for the client's <paramref name="clientId"/>: the same without tokens, else the token's
    /// scope's (<see cref="TenantScope.ProducerId"/>), so a token cannot publish in, or fence, another token's window.
    /// A client has one producer id as a rule: the last one mapped is kept, so the hash is computed once per id, not
    /// per message (reader thread).
    /// </summary>
    private ulong ScopedProducerId(ulong clientId)
    {
        if (clientId == 0 || _policy.Scope is not { } scope)
        {
            return clientId;
        }

        if (clientId != _scopedClientId)
        {
            (_scopedClientId, _scopedProducerId) = (clientId, scope.ProducerId(clientId));
        }

        return _scopedProducerId;
    }

    private void Bind(ulong producerId, ulong epoch)
    {
        lock (_bindGate)
        {
            if (_boundProducer == 0 || _boundProducer == producerId)
            {
                (_boundProducer, _boundEpoch) = (producerId, epoch);
            }
            else
            {
                (_moreBound ??= [])[producerId] = epoch;
            }
        }
    }

    /// <summary>The epoch this connection bound <paramref name="producerId"/> to, 0 if none (reader thread).</summary>
    private ulong EpochOf(ulong producerId)
    {
        if (producerId == 0)
        {
            return 0;
        }

        if (Volatile.Read(ref _bindsPending) == 0)
        {
            return BoundEpoch(producerId); // only this thread binds now
        }

        lock (_bindGate)
        {
            return BoundEpoch(producerId);
        }
    }

    private ulong BoundEpoch(ulong producerId) =>
        producerId == _boundProducer ? _boundEpoch
        : _moreBound is { } more ? more.GetValueOrDefault(producerId)
        : 0;

    public void OnPublishConfirmed(ulong token, long offset, bool duplicate)
    {
        QueueConfirm(new ConfirmEntry(token, ErrorCode.None, (ulong)offset, duplicate));
        Interlocked.Decrement(ref _pendingConfirms);
    }

    public void OnPublishFailed(ulong token, BrokerErrorCode code, string reason)
    {
        QueueConfirm(new ConfirmEntry(token, ToWire(code), 0, false));
        Interlocked.Decrement(ref _pendingConfirms);
    }

    private void ConfirmedSilently() => Interlocked.Decrement(ref _pendingConfirms);

    private void Add(ref PublishClaim claim, ReadOnlySpan<byte> topic, in ReadOnlySequence<byte> key, in ReadOnlySequence<byte> headers, in ReadOnlySequence<byte> payload, in PublishParameters parameters, IPublishConfirmSink sink, ulong requestId)
    {
        if (_policy.PublishUnrestricted || _policy.CanPublish(topic))
        {
            claim.Add(topic, key, headers, payload, parameters, sink, requestId);
        }
        else
        {
            // Through the claim, not around it: the refusal keeps its place among this connection's confirmations.
            claim.AddFailed((BrokerErrorCode)ErrorCode.Forbidden, ForbiddenReason, sink, requestId);
        }
    }

    /// <summary>
    /// A claim of <paramref name="count"/> slots that failed unexpectedly before its commit (the exception goes on to close
    /// the connection with <c>Internal</c>): its slots are published, the messages added reported failed by the broker,
    /// and those never added are not owed a confirmation, so the close does not wait for them.
    /// </summary>
    private void Abandon(ref PublishClaim claim, int count)
    {
        claim.Dispose();
        Interlocked.Add(ref _pendingConfirms, claim.Filled - count);
    }

    /// <summary>A publish the broker never saw (it refused the claim itself, e.g. closed): reported like any failure.</summary>
    private void FailLocally(ulong requestId, BrokerErrorCode code)
    {
        QueueConfirm(new ConfirmEntry(requestId, ToWire(code), 0, false));
    }

    private void QueueConfirm(in ConfirmEntry entry)
    {
        EnqueueConfirm(entry);
        _signal.Set();
    }

    /// <summary>Queues a confirmation without waking the writer (the caller sends it or wakes the writer itself).</summary>
    private void EnqueueConfirm(in ConfirmEntry entry)
    {
        _confirms.Enqueue(entry);
        Interlocked.Increment(ref _queuedConfirms);
    }

    private static ErrorCode ToWire(BrokerErrorCode code) => code == BrokerErrorCode.None ? ErrorCode.StorageError : (ErrorCode)(ushort)code;
}
