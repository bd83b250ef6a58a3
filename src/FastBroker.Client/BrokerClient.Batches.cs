using System.Buffers;
using System.Diagnostics;
using FastBroker.Client.Internal;
using FastBroker.Protocol;

namespace FastBroker.Client;

/// <summary>PUBLISH_BATCH frames: collecting the next publishes that can share one off the send list, encoding them, and failing those refused before sending.</summary>
public sealed partial class BrokerClient
{
    private static void FailRefused(List<(PendingPublish Publish, BrokerClientException Error)> refused)
    {
        foreach (var (p, error) in refused)
        {
            p.TrySetException(error);
            p.Release();
        }

        refused.Clear();
    }

    /// <summary>
    /// Takes the next publishes that can share one PUBLISH_BATCH (same fire-and-forget flag and durability,
    /// consecutive producer sequences) into <paramref name="batch"/>, gives them consecutive request ids and registers
    /// the confirmable ones. Returns how many; <paramref name="capacity"/> is the frame's exact size.
    /// </summary>
    private int CollectBatchLocked(PendingPublish[] batch, List<(PendingPublish Publish, BrokerClientException Error)> refused, out int capacity, out ulong firstRequestId)
    {
        var maxFrame = _serverMaxFrameSize;
        var limit = Math.Min(_options.MaxBatchBytes, maxFrame);
        var bytes = BatchHeaderBytes;
        var count = 0;
        firstRequestId = _nextRequestId;
        PendingPublish? previous = null;
        if (_resumePending)
        {
            capacity = 0;
            return 0; // the epoch resume is unanswered: nothing is sent unbound (Activate)
        }

        var p = _nextToSend;
        while (p is not null && count < batch.Length)
        {
            var size = p.EntrySize;
            BrokerClientException? refusal = null;
            if (p.FixedSequence && !_idempotent)
            {
                // A retry (RetryAsync) queued before a reconnect to a server that does not grant IdempotentProducer:
                // sent without its producer id and sequence it would be a new message, stored a second time.
                refusal = ThrowHelper.RetryNotIdempotent();
            }
            else if (count == 0 && (long)bytes + size > maxFrame)
            {
                refusal = ThrowHelper.MessageTooLarge(p.Topic, (long)bytes + size, maxFrame); // fitted the previous server's limit, not this one's
            }

            if (refusal is not null)
            {
                var next = p.Next;
                RetargetFlushWaitersLocked(p, p.Previous);
                UnlinkLocked(p);
                _inFlight--;
                refused.Add((p, refusal)); // failed by Drain once the lock is released
                p = next;
                continue;
            }

            if (count > 0 && ((long)bytes + size > limit || !CanFollow(previous!, p)))
            {
                break;
            }

            bytes += size;
            p.RequestId = _nextRequestId++;
            if (!p.FireAndForget)
            {
                _byRequestId.Add(p.RequestId, p);
            }

            batch[count++] = p;
            previous = p;
            p = p.Next;
        }

        _nextToSend = p;
        capacity = bytes;
        return count;
    }

    private bool CanFollow(PendingPublish previous, PendingPublish p)
        => p.FireAndForget == previous.FireAndForget
            && p.Durability == previous.Durability
            && (p.FireAndForget || !_idempotent || p.Sequence == previous.Sequence + 1);

    private int EncodeBatch(IBufferWriter<byte> output, PendingPublish[] batch, int count, int capacity, ulong firstRequestId, bool idempotentConnection)
    {
        var first = batch[0];
        var idempotent = idempotentConnection && !first.FireAndForget;
        var writer = new PublishBatchWriter(
            output,
            capacity,
            firstRequestId,
            first.Durability,
            idempotent ? ProducerId : 0,
            idempotent ? first.Sequence : 0,
            first.FireAndForget ? PublishFlags.NoConfirm : PublishFlags.None);
        for (var i = 0; i < count; i++)
        {
            var p = batch[i];
            var added = writer.TryAdd(p.TopicBytes, p.Payload, p.Key, p.Headers, p.TtlMs);
            Debug.Assert(added, "the capacity was computed from the entry sizes");
        }

        return writer.Complete();
    }
}
