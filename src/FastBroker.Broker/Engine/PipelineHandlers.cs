using FastBroker.Journal;
using FastBroker.Ring;
using FastBroker.Storage;

namespace FastBroker.Engine;

/// <summary>
/// The journaler: the single writer of every topic's journal (and transient ring). Appends each accepted message,
/// records the offset it got, and commits each touched journal once per ring batch (one commit covers the batch).
/// </summary>
internal struct JournalerHandler(Pipeline pipeline, Dispatcher dispatcher, ProducerRegistry producers, TimeProvider clock) : IEventHandler<PublishEntry>
{
    private readonly List<TopicState> _touched = new(64);
    private long _batch;
    private long _batchTimestamp;
    private long _batchStart;

    public void OnBatchStart(long batchSize)
    {
        _batch++;
        _batchStart = -1;
        _batchTimestamp = clock.GetUtcNow().ToUnixTimeMilliseconds();
        producers.Sweep(_batchTimestamp);
        producers.CaptureIfAsked();
    }

    public void OnEvent(PublishEntry entry, long sequence, bool endOfBatch)
    {
        if (_batchStart < 0)
        {
            _batchStart = sequence;
        }

        if (entry.Error != BrokerErrorCode.None)
        {
            // Refused before it reached us (claim API): only its outcome travels on.
        }
        else if (entry.ProducerId != 0 && !CheckProducer(entry))
        {
            // An idempotent retry of a stored message, or too old to tell: nothing to write.
        }
        else
        {
            Write(entry);
        }

        if (endOfBatch)
        {
            EndBatch(sequence);
        }
    }

    public readonly void OnShutdown() => CommitTouched();

    private readonly bool CheckProducer(PublishEntry entry)
    {
        switch (producers.Check(entry.ProducerId, entry.ProducerSequence, out _, out var offset, out var highest, entry.ProducerEpoch, _batchTimestamp))
        {
            case ProducerRegistry.Verdict.Fenced:
                Refuse(entry, BrokerErrorCode.ProducerFenced, $"producer {entry.ProducerId:x16}: epoch {entry.ProducerEpoch} was replaced by a newer instance of the id: not stored");
                return false;
            case ProducerRegistry.Verdict.NeverGiven:
                Refuse(entry, BrokerErrorCode.InvalidArgument, $"producer {entry.ProducerId:x16}: epoch {entry.ProducerEpoch} was never given (it is more than a day ahead of this broker's clock and above the newest epoch of the id, {producers.Fence(entry.ProducerId)}; use the one InitProducer returns): not stored");
                return false;
            case ProducerRegistry.Verdict.Duplicate:
                entry.Offset = offset;
                entry.Duplicate = true;
                return false;
            case ProducerRegistry.Verdict.TooOld:
                Refuse(entry, BrokerErrorCode.InvalidArgument, $"producer {entry.ProducerId:x16}: sequence {entry.ProducerSequence} is older than the deduplication window or than the oldest sequence known for it (newest stored: {highest})");
                return false;
            default:
                return true;
        }
    }

    private void Write(PublishEntry entry)
    {
        var topic = entry.Topic!;
        if (topic.Journal is { } journal)
        {
            if (entry.ProducerId != 0)
            {
                // Before the append: a retention pass that sees the journal's next offset past the record sees this too.
                Volatile.Write(ref topic.NewestProducerRecord, journal.NextOffset);
            }

            entry.Offset = Append(journal, entry);
            if (topic.LastAppendBatch != _batch)
            {
                topic.LastAppendBatch = _batch;
                _touched.Add(topic);
            }
        }
        else
        {
            entry.Offset = topic.Transient!.Append(entry.Key, entry.Headers, entry.Payload, _batchTimestamp, entry.Flags);
        }

        if (entry.Offset >= 0)
        {
            topic.Published++;
            topic.PublishedBytes += entry.PayloadLength;
            if (entry.ProducerId != 0)
            {
                producers.Record(entry.ProducerId, entry.ProducerSequence, topic, entry.Offset, _batchTimestamp, entry.ProducerEpoch);
            }

            producers.CountWrite();
        }
    }

    private readonly void EndBatch(long sequence)
    {
        CommitTouched();

        // Dispatch the batch here, after its commit, saving a thread and a hand-off. The slots are still ours:
        // the ring cannot reuse them before this processor's sequence moves on.
        var ring = pipeline.Ring;
        dispatcher.BeginBatch();
        for (var s = _batchStart; s <= sequence; s++)
        {
            dispatcher.Dispatch(ring[s]);
        }

        dispatcher.EndOfBatch();
        dispatcher.Gate?.AwaitAcks(ring, sequence);
        pipeline.ReleaseBatch(sequence);
    }

    private readonly void CommitTouched()
    {
        foreach (var t in _touched)
        {
            t.Journal!.Commit();
        }

        _touched.Clear();
    }

    private readonly long Append(JournalLog journal, PublishEntry entry)
    {
        var spin = new SpinWait();
        while (true)
        {
            try
            {
                if (journal.TryAppend(entry.Key, entry.Headers, entry.Payload, (RecordFlags)entry.Flags, _batchTimestamp, out var offset))
                {
                    return offset;
                }
            }
            catch (JournalFullException ex)
            {
                return RefuseStorage(entry, BrokerErrorCode.StorageFull, $"topic '{entry.Topic!.Name}': storage full, message not written: {ex.Message}");
            }
            catch (JournalException ex) when (ex.ErrorCode == JournalErrorCode.RecordTooLarge)
            {
                // Only a dead letter can get here (a publish is checked against the topic's limit, at most half a segment).
                return Refuse(entry, BrokerErrorCode.MessageTooLarge, $"topic '{entry.Topic!.Name}': {ex.Message}");
            }
            catch (JournalException ex) when (ResourceShortage.Describe(ex) is { } shortage)
            {
                // A new segment cannot be created now (out of descriptors, say): the journal is as it was, and the
                // same publish may be written later.
                return RefuseStorage(entry, BrokerErrorCode.ResourceExhausted, $"topic '{entry.Topic!.Name}': message not written, a new segment cannot be created now ({shortage}: {ex.Message}); try again later");
            }
            catch (JournalException ex)
            {
                return RefuseStorage(entry, BrokerErrorCode.StorageError, $"topic '{entry.Topic!.Name}': journal error, message not written: {ex.Message}");
            }
            catch (ArgumentException ex)
            {
                return Refuse(entry, BrokerErrorCode.MessageTooLarge, $"topic '{entry.Topic!.Name}': {ex.Message}");
            }

            // Back-pressure from a syncing journal (too much not yet durable): let the flusher catch up.
            journal.Commit();
            if (pipeline.Stopping && spin.Count > 1000)
            {
                return Refuse(entry, BrokerErrorCode.Closed, "broker is shutting down");
            }

            spin.SpinOnce(sleep1Threshold: 20);
        }
    }

    private readonly long RefuseStorage(PublishEntry entry, BrokerErrorCode code, string reason)
    {
        pipeline.NoteStorageRefusal(reason);
        return Refuse(entry, code, reason);
    }

    private static long Refuse(PublishEntry entry, BrokerErrorCode code, string reason)
    {
        entry.Error = code;
        entry.ErrorReason = reason;
        return -1;
    }
}

/// <summary>The dispatch work: confirmations and reader wake-ups, run on the journaler thread after each batch's commit.</summary>
internal sealed class Dispatcher
{
    private readonly List<TopicState> _touched = new(64);
    private readonly ConfirmBatch _confirms = new();
    private long _batch;
    private bool _deposed;

    /// <summary>Set when the broker is the primary of a failover pair: holds standby-mode confirmations.</summary>
    public ReplicationGate? Gate { get; set; }

    /// <summary>
    /// Before a batch is dispatched: whether this node may still confirm as the primary of a pair. A primary frozen
    /// (SIGSTOP, a paused VM) past its witness lease runs again with its clients' publishes already in its socket
    /// buffers; they reach this point before the lease keeper's timer has fenced the node, and were confirmed as local
    /// on a node the witness had already replaced (ThawedPrimaryWriteTests). Written on disk, they are cut when the node
    /// rejoins; withheld here (<see cref="ReplicationGate.Withhold"/>) while the node closes its connections, their
    /// producers send them to the new primary.
    /// </summary>
    public void BeginBatch() => _deposed = Gate is { } gate && !gate.MayConfirm;

    public void Dispatch(PublishEntry entry)
    {
        var topic = entry.Topic;
        if (entry.Error != BrokerErrorCode.None)
        {
            Fail(entry);
        }
        else if (_deposed && (entry.Completion is not null || entry.Sink is not null))
        {
            Gate!.Withhold(new PendingConfirmation(entry.Offset, entry.Duplicate, entry.Completion, entry.Sink, entry.Token));
        }
        else if (entry.AckMode != AckMode.Local && Gate is { } gate && (entry.Completion is not null || entry.Sink is not null))
        {
            // Replication reads only durable records, so the standby's ack implies the local durability too.
            gate.Enqueue(topic!, entry.AckMode, new PendingConfirmation(entry.Offset, entry.Duplicate, entry.Completion, entry.Sink, entry.Token));
        }
        else if (entry.WaitDurable && topic!.Durability is { } notifier)
        {
            notifier.Enqueue(new PendingConfirmation(entry.Offset, entry.Duplicate, entry.Completion, entry.Sink, entry.Token));
        }
        else
        {
            entry.Completion?.Complete(entry.Offset);
            _confirms.Confirm(entry.Sink, entry.Token, entry.Offset, entry.Duplicate);
        }

        if (entry.Offset >= 0 && (!entry.Duplicate || (entry.WaitDurable && topic!.Durability is not null)))
        {
            // A duplicate waiting for the durable mark needs the notifier kicked too (it only looks at its queue
            // when kicked), but must not move its target back to the original's offset.
            if (topic!.LastWakeBatch != _batch)
            {
                topic.LastWakeBatch = _batch;
                _touched.Add(topic);
            }

            if (!entry.Duplicate)
            {
                topic.Durability?.Target(entry.Offset);
            }
        }

        entry.Clear();
    }

    private static void Fail(PublishEntry entry)
    {
        var reason = entry.ErrorReason ?? entry.Error.ToString();
        entry.Completion?.Fail(new BrokerException(entry.Error, reason));
        entry.Sink?.OnPublishFailed(entry.Token, entry.Error, reason);
    }

    public void EndOfBatch()
    {
        // Sinks first: a batch's confirmations leave before its readers are woken.
        _confirms.End();
        foreach (var t in _touched)
        {
            if (t.Durability is { } d)
            {
                d.Kick();
            }
            else
            {
                t.WakeListeners();
            }
        }

        _touched.Clear();
        _batch++;
    }
}
