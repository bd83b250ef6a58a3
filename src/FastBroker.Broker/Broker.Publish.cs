using System.Diagnostics.CodeAnalysis;
using FastBroker.Engine;

namespace FastBroker;

/// <summary>Publishing.</summary>
public sealed partial class Broker
{
    /// <summary>
    /// Header carrying a message's expiry (Unix ms, 8 bytes little-endian), added by the broker when a TTL is given.
    /// Reserved: a publish whose own headers use this name is refused (<see cref="BrokerErrorCode.InvalidArgument"/>).
    /// </summary>
    public const string ExpiresHeader = "fb-expires";

    /// <summary>Flag bit (in the journal record's flags) marking a message that carries <see cref="ExpiresHeader"/>.</summary>
    internal const ushort HasExpiryFlag = (ushort)FastBroker.Journal.RecordFlags.HasExpiry;

    /// <summary>
    /// Header carrying an idempotent producer's id and sequence (16 bytes: two u64 little-endian), added by the broker;
    /// the deduplication window is rebuilt from it after a restart or a failover. Reserved: a publish whose own headers
    /// use this name is refused (<see cref="BrokerErrorCode.InvalidArgument"/>).
    /// </summary>
    public const string ProducerHeader = "fb-producer";

    /// <summary>Flag bit marking a record that carries <see cref="ProducerHeader"/> (so recovery parses only those).</summary>
    internal const ushort HasProducerFlag = (ushort)FastBroker.Journal.RecordFlags.HasProducer;

    private static readonly byte[] s_expiresHeaderName = "fb-expires"u8.ToArray();
    private static readonly byte[] s_producerHeaderName = "fb-producer"u8.ToArray();

    /// <summary>Extra bytes the TTL header takes in the header block.</summary>
    internal static int ExpiryHeaderSize => 3 + s_expiresHeaderName.Length + 8;

    /// <summary>The reason an abandoned embedded publish's slots carry (nobody reads it: the caller got the exception).</summary>
    private const string AbandonedReason = "the embedded publish failed before its slots were published, not stored: the caller got the exception";

    internal static ReadOnlySpan<byte> ExpiresHeaderName => s_expiresHeaderName;

    internal static ReadOnlySpan<byte> ProducerHeaderName => s_producerHeaderName;

    /// <summary>Extra bytes the producer header takes in the header block: id and sequence, and the epoch when there is one.</summary>
    internal static int ProducerHeaderSize(bool withEpoch) => 3 + s_producerHeaderName.Length + (withEpoch ? 24 : 16);

    /// <summary>
    /// The producer sequence an idempotent producer (re)starting with <paramref name="producerId"/> should number its
    /// messages from: one past the highest sequence stored for that id within the deduplication window (rebuilt from
    /// the journal at start, so also after a restart or on a promoted standby), or 0 when the broker holds none. A
    /// new process reusing a configured id must start there: lower sequences would be taken for retries of the old
    /// process's messages and confirmed as duplicates without being stored. Thread-safe; publishes still in the
    /// input ring when it is asked are not counted.
    /// </summary>
    /// <exception cref="BrokerException"><see cref="BrokerErrorCode.NotPrimary"/>: the broker is a deposed primary of a failover pair (its witness lease ran out, or a newer primary exists): its answer (the protocol's INIT_PRODUCER without an epoch) could count records the new primary lacks.</exception>
    public ulong NextProducerSequence(ulong producerId)
    {
        ThrowIfDeposed(producerId, "no sequence given");
        return _producers.NextSequence(producerId);
    }

    /// <summary>
    /// Starts (<paramref name="epoch"/> = 0) or resumes (the epoch this returned before) an instance of the idempotent
    /// producer <paramref name="producerId"/>, for publishes that carry the returned epoch
    /// (<see cref="PublishParameters.ProducerEpoch"/>). A start gets an epoch above every earlier one of the id (the
    /// current Unix time in milliseconds, or one more than the newest if that is later), which <b>fences</b> older
    /// instances: their publishes, including those already queued, are refused with
    /// <see cref="BrokerErrorCode.ProducerFenced"/> instead of being stored, or confirmed as duplicates of the new
    /// instance's messages. Returns the sequence to number from (as <see cref="NextProducerSequence"/>) and the epoch.
    /// Thread-safe. A new epoch is written to <c>producers.epochs</c> (the file fsync'd, renamed, the directory fsync'd)
    /// before this returns, so a restart, also after a power loss, fences with it even before the instance's first record
    /// (each record then carries it too); on the primary of a
    /// failover pair that file is sent to the standby at once, and when <see cref="BrokerOptions.DefaultTopicOptions"/>
    /// acknowledge in a standby mode this returns only once the standby holds it, so a promoted standby fences with it
    /// too (docs/broker.md). Blocks the calling thread meanwhile: <see cref="InitProducerAsync"/> does not. Each epoch's
    /// sequences are deduplicated on their own, so no message is confirmed as another instance's duplicate.
    /// </summary>
    /// <exception cref="BrokerException"><see cref="BrokerErrorCode.ProducerFenced"/>: resuming an epoch a newer instance has replaced; <see cref="BrokerErrorCode.InvalidArgument"/>: producer id 0, or resuming an epoch this broker cannot have given (above the newest of the id and more than a day ahead of its clock); <see cref="BrokerErrorCode.StorageError"/>: the new epoch could not be written to disk; <see cref="BrokerErrorCode.NotReplicated"/>: the standby did not acknowledge it within the ack timeout (in both cases the running broker fences with it all the same); <see cref="BrokerErrorCode.NotPrimary"/>: the broker is a deposed primary of a failover pair (its witness lease ran out, or a newer primary exists), before anything is given, or once its lease ran out while the new epoch was written or sent to the standby (given on this node, not answered); <see cref="BrokerErrorCode.Closed"/>: the broker closed.</exception>
    public (ulong NextSequence, ulong Epoch) InitProducer(ulong producerId, ulong epoch = 0)
    {
        var result = InitProducerCore(producerId, epoch, out var replicated);
        replicated?.GetAwaiter().GetResult();
        return result;
    }

    /// <summary>
    /// <see cref="InitProducer"/> without blocking: completes once a new epoch is on disk here and, on the primary of a
    /// failover pair whose <see cref="BrokerOptions.DefaultTopicOptions"/> acknowledge in a standby mode, on the standby
    /// (the server answers INIT_PRODUCER from it). The epoch is given (and fences) when this returns, before it completes.
    /// </summary>
    /// <exception cref="BrokerException">As <see cref="InitProducer"/>.</exception>
    public ValueTask<(ulong NextSequence, ulong Epoch)> InitProducerAsync(ulong producerId, ulong epoch = 0, CancellationToken cancellationToken = default)
    {
        var result = InitProducerCore(producerId, epoch, out var replicated);
        return replicated is null ? ValueTask.FromResult(result) : AwaitReplicated(replicated, result, cancellationToken);

        static async ValueTask<(ulong, ulong)> AwaitReplicated(Task replicated, (ulong, ulong) result, CancellationToken cancellationToken)
        {
            await replicated.WaitAsync(cancellationToken).ConfigureAwait(false);
            return result;
        }
    }

    private (ulong NextSequence, ulong Epoch) InitProducerCore(ulong producerId, ulong epoch, out Task? replicated)
    {
        if (producerId == 0)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, "producer id 0 is not an idempotent producer");
        }

        // A deposed primary of a pair (its witness lease ran out, or a newer primary exists) that has not stepped down
        // yet: an epoch given here is one the new primary never sees, so it fences nothing there. Refused as a COMMIT is.
        ThrowIfDeposed(producerId, "not initialized");
        var result = _producers.Init(producerId, epoch, (ulong)_options.StampClock.GetUtcNow().ToUnixTimeMilliseconds(), out var raised)
            ?? throw new BrokerException(BrokerErrorCode.ProducerFenced, $"producer {producerId:x16}: epoch {epoch} was replaced by a newer instance of the id (epoch {_producers.Fence(producerId)})");
        replicated = null;
        if (raised)
        {
            _producerEpochs.Persist(_producers); // on disk (producers.epochs) before it is answered: a restart fences with it too

            // On a pair, the standby gets that file at once (not at the next heartbeat), and in a standby ack mode the
            // answer waits for it: a standby promoted after the answer fences with the epoch as this node does.
            if (Replication is { } gate)
            {
                // The lease may have run out during the write's fsyncs: given here (it fences on this node), not answered.
                ThrowIfDeposed(producerId, $"epoch {result.Epoch} given on this node but not confirmed");
                replicated = gate.WaitForState(gate.ProducerEpochsWritten(), _options.DefaultTopicOptions.Acks, $"producer {producerId:x16}: epoch {result.Epoch} given");
            }
        }

        return result;
    }

    private void ThrowIfDeposed(ulong producerId, string what)
    {
        if (Replication is { MayConfirm: false })
        {
            throw new BrokerException(BrokerErrorCode.NotPrimary, $"producer {producerId:x16}: {what}: this node is no longer the primary (its witness lease ran out, or a newer primary exists)");
        }
    }

    /// <summary>
    /// The largest count <see cref="TryBeginPublish"/> and <see cref="TryPublishBatch"/> accept, and the largest claim
    /// <see cref="PublishBatchAsync"/> makes: a quarter of the input ring, so one producer's claim, held while its
    /// messages are copied in, leaves room for the others.
    /// </summary>
    public int MaxPublishClaim => Math.Max(1, _pipeline.Ring.BufferSize / 4);

    /// <summary>
    /// Claims <paramref name="count"/> input-ring slots for a batch of publishes whose outcomes go to
    /// <see cref="IPublishConfirmSink"/>s — the allocation-free path of a network server (one claim per received
    /// frame or read batch). False when the ring lacks room: back-pressure, await <see cref="WaitForPublishRoomAsync"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is below 1 or above <see cref="MaxPublishClaim"/>.</exception>
    /// <exception cref="BrokerException"><see cref="BrokerErrorCode.Closed"/>.</exception>
    public bool TryBeginPublish(int count, out PublishClaim claim)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, MaxPublishClaim);
        ThrowIfClosed();
        if (!TryClaim(count, out var hi))
        {
            claim = default;
            return false;
        }

        claim = new PublishClaim(this, hi - count + 1, count);
        return true;
    }

    internal global::FastBroker.Ring.RingBuffer<PublishEntry> Ring => _pipeline.Ring;

    /// <summary>
    /// Publishes without waiting: copies the message into the input ring and returns. False when the ring is full
    /// (back-pressure: the caller decides to retry, wait or drop). Allocation-free. Should the copy fail once the slot is
    /// reserved (an <see cref="OutOfMemoryException"/> growing the slot for a large message), the slot is still published,
    /// as an entry the pipeline skips, so other publishers go on; nothing is stored and the exception reaches the caller.
    /// </summary>
    /// <exception cref="BrokerException">Invalid or unknown topic, message too large, a header name the broker writes itself
    /// (<see cref="ExpiresHeader"/>, <see cref="ProducerHeader"/>: <see cref="BrokerErrorCode.InvalidArgument"/>), broker closed.</exception>
    public bool TryPublish(string topic, ReadOnlySpan<byte> payload, ReadOnlySpan<byte> key = default, MessageHeaders? headers = null, TimeSpan ttl = default)
    {
        ThrowIfClosed();
        var t = _topics.GetForUse(topic);
        var headerBlock = headers is null ? default : headers.Encoded;
        var expires = CheckAndExpiry(t, key.Length, headerBlock.Length, payload.Length, ttl);
        ThrowIfBrokerHeaders(headerBlock);
        var ring = _pipeline.Ring;
        if (!TryClaim(1, out var sequence))
        {
            return false;
        }

        try
        {
            ring[sequence].Fill(t, key, headerBlock, payload, expires, null);
        }
        catch
        {
            AbandonReserved(sequence, sequence);
            throw;
        }

        ring.Publish(sequence);
        return true;
    }

    /// <summary>
    /// Publishes several messages to one topic with one claim of the ring: all or none (false when the ring lacks
    /// room for all). At most <see cref="MaxPublishClaim"/> messages (a quarter of the ring), as one claim of
    /// <see cref="TryBeginPublish"/>: a claim of the whole ring, held while the messages are copied in, would leave
    /// every other producer of the broker without room, and one larger than the ring could never be taken, so a larger
    /// batch is refused before anything is claimed; <see cref="PublishBatchAsync"/> publishes any number in claims of
    /// that size. Allocation-free. An exception while the messages are copied in (a payload whose memory throws when
    /// read, an <see cref="OutOfMemoryException"/>) stores none of them either: every claimed slot is published as an
    /// entry the pipeline skips, so other publishers go on, and the exception reaches the caller.
    /// </summary>
    /// <exception cref="BrokerException">More than <see cref="MaxPublishClaim"/> messages
    /// (<see cref="BrokerErrorCode.InvalidArgument"/>), invalid or unknown topic, a message too large, broker closed.</exception>
    public bool TryPublishBatch(string topic, ReadOnlySpan<ReadOnlyMemory<byte>> payloads)
    {
        ThrowIfClosed();
        if (payloads.IsEmpty)
        {
            return true;
        }

        if (payloads.Length > MaxPublishClaim)
        {
            ThrowBatchOverClaim(payloads.Length);
        }

        var t = _topics.GetForUse(topic);
        foreach (var p in payloads)
        {
            CheckAndExpiry(t, 0, 0, p.Length, default);
        }

        var ring = _pipeline.Ring;
        if (!TryClaim(payloads.Length, out var hi))
        {
            return false;
        }

        var lo = hi - payloads.Length + 1;
        try
        {
            for (var i = 0; i < payloads.Length; i++)
            {
                ring[lo + i].Fill(t, default, default, payloads[i].Span, 0, null);
            }
        }
        catch
        {
            AbandonReserved(lo, hi);
            throw;
        }

        ring.Publish(lo, hi);
        return true;
    }

    /// <summary>
    /// Publishes and completes with the message's offset once it is confirmed per the topic's durability (written to
    /// the journal, or flushed by a group commit). Waits (asynchronously) while the input ring is full. An exception
    /// reading <paramref name="payload"/> or <paramref name="key"/> once the slot is reserved (a memory whose span throws)
    /// or copying them (an <see cref="OutOfMemoryException"/>) reaches the caller with nothing stored; the slot is
    /// published as an entry the pipeline skips, so other publishers go on.
    /// </summary>
    /// <exception cref="BrokerException">Invalid or unknown topic, message too large, a header name the broker writes itself
    /// (<see cref="ExpiresHeader"/>, <see cref="ProducerHeader"/>: <see cref="BrokerErrorCode.InvalidArgument"/>), storage full, broker closed.</exception>
    public ValueTask<long> PublishAsync(string topic, ReadOnlyMemory<byte> payload, ReadOnlyMemory<byte> key = default, MessageHeaders? headers = null, TimeSpan ttl = default, CancellationToken cancellationToken = default)
    {
        ThrowIfClosed();
        var t = _topics.GetForUse(topic);
        var headerBlock = headers is null ? default : headers.Encoded;
        var expires = CheckAndExpiry(t, key.Length, headerBlock.Length, payload.Length, ttl);
        ThrowIfBrokerHeaders(headerBlock);
        var ring = _pipeline.Ring;
        if (!TryClaim(1, out var sequence))
        {
            return PublishWhenRoomAsync(t, payload, key, headers?.Encoded.ToArray(), expires, cancellationToken);
        }

        return Publish(t, sequence, payload, key, headerBlock, expires);
    }

    /// <summary>
    /// Publishes a batch and completes with the last message's offset once all of it is confirmed. Not all or none: the
    /// batch goes in claims of at most <see cref="MaxPublishClaim"/> messages, each confirmed before the next is claimed,
    /// and each item of <paramref name="payloads"/> is read once, checked and copied as it is read. A claim is stored
    /// whole or not at all: should the batch fail part way — a message too large, the list's indexer throwing (a list
    /// another thread shrinks), a payload whose memory throws, an <see cref="OutOfMemoryException"/> — the claims before
    /// the failing one are stored and confirmed, nothing of the failing claim or after it is stored (its slots are
    /// published as entries the pipeline skips, so other publishers go on), and the exception reaches the caller.
    /// </summary>
    /// <exception cref="BrokerException">An empty batch, invalid or unknown topic, a message too large, a confirmation's
    /// failure (as <see cref="PublishAsync"/>), broker closed.</exception>
    public async ValueTask<long> PublishBatchAsync(string topic, IReadOnlyList<ReadOnlyMemory<byte>> payloads, CancellationToken cancellationToken = default)
    {
        ThrowIfClosed();
        if (payloads.Count == 0)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, "a batch needs at least one message");
        }

        long last = -1;
        var t = _topics.GetForUse(topic);
        var ring = _pipeline.Ring;
        var index = 0;
        while (index < payloads.Count)
        {
            var n = Math.Min(payloads.Count - index, MaxPublishClaim);
            if (!TryClaim(n, out var hi))
            {
                await WaitForRoomAsync(n, cancellationToken).ConfigureAwait(false);
                continue;
            }

            var lo = hi - n + 1;
            PublishCompletion completion;
            try
            {
                completion = PublishCompletion.Rent();
                for (var i = 0; i < n; i++)
                {
                    // Each item read once, checked and copied as read: the caller's list may change under us.
                    var payload = payloads[index + i];
                    CheckAndExpiry(t, 0, 0, payload.Length, default);
                    ring[lo + i].Fill(t, default, default, payload.Span, 0, i == n - 1 ? completion : null);
                }
            }
            catch
            {
                AbandonReserved(lo, hi);
                throw;
            }

            ring.Publish(lo, hi);
            last = await completion.Task.ConfigureAwait(false);
            index += n;
        }

        return last;
    }

    /// <summary>
    /// Publishes a work-queue group's dead letter to <paramref name="topic"/>, like <see cref="PublishAsync"/> but not
    /// bound by that topic's <see cref="TopicOptions.MaxMessageBytes"/>: the copy is the original message plus the
    /// <c>fb-dlq-*</c> headers (about 100 bytes and the error text, at most 1,024 characters), so a message the source
    /// topic accepted at its limit must still be storable. What bounds it is what the dead-letter topic can hold: a
    /// persistent topic's record must fit in one of its segments (at least twice its own limit), else the journaler
    /// refuses it with <see cref="BrokerErrorCode.MessageTooLarge"/>, a refusal that no retry can change.
    /// </summary>
    internal ValueTask<long> PublishDeadLetterAsync(string topic, ReadOnlyMemory<byte> payload, ReadOnlyMemory<byte> key, MessageHeaders headers, CancellationToken cancellationToken)
    {
        ThrowIfClosed();
        var t = _topics.GetForUse(topic);
        if (key.Length > ushort.MaxValue)
        {
            throw new BrokerException(BrokerErrorCode.MessageTooLarge, $"a key is at most {ushort.MaxValue} bytes (got {key.Length})");
        }

        if (!TryClaim(1, out var sequence))
        {
            return PublishWhenRoomAsync(t, payload, key, headers.Encoded.ToArray(), 0, cancellationToken);
        }

        return Publish(t, sequence, payload, key, headers.Encoded, 0);
    }

    /// <summary>Fills the reserved slot <paramref name="sequence"/> and publishes it (the memories are read here, after the reservation, so a read that throws abandons the slot).</summary>
    private ValueTask<long> Publish(TopicState t, long sequence, ReadOnlyMemory<byte> payload, ReadOnlyMemory<byte> key, ReadOnlySpan<byte> headers, long expires)
    {
        // Even with Durability.None the confirmation comes from the dispatcher (microseconds later): that is where
        // the offset is known. Fire-and-forget is TryPublish.
        var ring = _pipeline.Ring;
        PublishCompletion completion;
        try
        {
            completion = PublishCompletion.Rent();
            ring[sequence].Fill(t, key.Span, headers, payload.Span, expires, completion);
        }
        catch
        {
            AbandonReserved(sequence, sequence);
            throw;
        }

        ring.Publish(sequence);
        return completion.Task;
    }

    /// <summary>
    /// Claims <paramref name="count"/> input-ring slots (<paramref name="hi"/> the last); false when the ring lacks room.
    /// The close is checked again once the slots are claimed: a publisher that passed the check before its claim, then
    /// was held (preempted, or in the caller's own code) until the close had drained the pipeline and stopped the
    /// journaler, claimed slots nobody would ever read, so its <see cref="PublishAsync"/> waited for ever and its
    /// <see cref="TryPublish"/> returned true for a message never stored. Both sides fence (the claim's CAS of the ring's
    /// cursor, <see cref="DisposeAsync"/>'s of the state) before they read the other's: either this sees the close and
    /// gives the slots back as skipped entries and throws <see cref="BrokerErrorCode.Closed"/>, or the close's drain sees
    /// the claim and waits for it to be published and journaled. One read per claim, nothing allocated.
    /// </summary>
    /// <exception cref="BrokerException"><see cref="BrokerErrorCode.Closed"/>: the broker began to close; nothing is stored.</exception>
    private bool TryClaim(int count, out long hi)
    {
        if (!_pipeline.Ring.TryNext(count, out hi))
        {
            return false;
        }

        if (Volatile.Read(ref _state) != 0)
        {
            ThrowClosedAfterClaim(hi - count + 1, hi);
        }

        return true;
    }

    [DoesNotReturn]
    private void ThrowClosedAfterClaim(long lo, long hi)
    {
        AbandonReserved(lo, hi);
        throw new BrokerException(BrokerErrorCode.Closed, "the broker is closed");
    }

    /// <summary>
    /// Publishes the reserved sequences <paramref name="lo"/>..<paramref name="hi"/> as refusals nobody is told of (the
    /// journaler skips them, the dispatcher has no one to confirm): called when filling them failed, before the exception
    /// goes on to the caller. The input ring's consumers wait on each reserved sequence in turn, so one left unpublished
    /// would stall every publisher of the broker. Nothing here allocates or throws.
    /// </summary>
    private void AbandonReserved(long lo, long hi)
    {
        var ring = _pipeline.Ring;
        for (var s = lo; s <= hi; s++)
        {
            ring[s].FillFailed(PublishClaim.AbandonedCode, AbandonedReason, null, 0);
        }

        ring.Publish(lo, hi);
    }

    [DoesNotReturn]
    private void ThrowBatchOverClaim(int count) =>
        throw new BrokerException(BrokerErrorCode.InvalidArgument, $"a batch of {count} messages is over MaxPublishClaim ({MaxPublishClaim}, a quarter of the {_pipeline.Ring.BufferSize}-slot input ring): TryPublishBatch claims it whole, so split it, or use PublishBatchAsync, which publishes in claims of that size");

    /// <summary>Refuses a header block that carries a name the broker writes itself (docs/broker.md, "Reserved headers").</summary>
    private static void ThrowIfBrokerHeaders(ReadOnlySpan<byte> headers)
    {
        if (!headers.IsEmpty && ReservedHeaders.FindBrokerWritten(headers) is { } reason)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, reason);
        }
    }

    private static long CheckAndExpiry(TopicState t, int keyLength, int headersLength, int payloadLength, TimeSpan ttl)
    {
        if (keyLength > ushort.MaxValue)
        {
            throw new BrokerException(BrokerErrorCode.MessageTooLarge, $"a key is at most {ushort.MaxValue} bytes (got {keyLength})");
        }

        var size = (long)keyLength + headersLength + payloadLength + (ttl > TimeSpan.Zero ? ExpiryHeaderSize : 0);
        if (size > t.Options.MaxMessageBytes)
        {
            throw new BrokerException(BrokerErrorCode.MessageTooLarge, $"message of {size} bytes exceeds the {t.Options.MaxMessageBytes}-byte limit of topic '{t.Name}'");
        }

        if (ttl < TimeSpan.Zero)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, "a TTL cannot be negative");
        }

        return ttl > TimeSpan.Zero ? DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + (long)Math.Ceiling(ttl.TotalMilliseconds) : 0;
    }
}
