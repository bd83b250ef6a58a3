using FastBroker.Client.Internal;
using FastBroker.Protocol;

namespace FastBroker.Client;

/// <summary>Confirmations: the reader loop completes publishes from CONFIRM ranges, or fails one an ERROR names.</summary>
public sealed partial class BrokerClient
{
    /// <summary>Publishes confirmed with the DUPLICATE flag: resent after a reconnect, already stored (tests, diagnostics).</summary>
    internal long DuplicateConfirmations
    {
        get
        {
            lock (_sync)
            {
                return _duplicateConfirmations;
            }
        }
    }

    /// <summary>
    /// Reader loop: completes publishes from CONFIRM ranges. They are taken off the send list under the lock and
    /// completed after it, so an inline continuation (<see cref="BrokerClientOptions.InlineCompletions"/>) never runs
    /// under the client's lock and may publish again at once.
    /// </summary>
    internal void OnConfirm(Connection connection, in ConfirmFrame frame)
    {
        long failed = 0;
        var failedCode = ErrorCode.None;
        var confirmed = connection.Confirmed;
        bool idempotent;
        lock (_sync)
        {
            idempotent = _idempotent;
            foreach (var range in frame)
            {
                if (range.Duplicate)
                {
                    _duplicateConfirmations += range.Count;
                }

                for (uint i = 0; i < range.Count; i++)
                {
                    if (!_byRequestId.Remove(range.FirstRequestId + i, out var p))
                    {
                        if (range.Status != ErrorCode.None)
                        {
                            failed++; // a fire-and-forget message
                            failedCode = range.Status;
                        }

                        continue;
                    }

                    UnlinkLocked(p);
                    _inFlight--;
                    confirmed.Add((p, (long)(range.FirstOffset + i), range.Status));
                }
            }

            AdmitWaitingLocked();
        }

        foreach (var (p, offset, status) in confirmed)
        {
            if (status == ErrorCode.None)
            {
                p.TrySetResult(offset);
            }
            else if (status == ErrorCode.NotReplicated && idempotent)
            {
                p.TrySetException(NotReplicated(p));
            }
            else if (status == ErrorCode.InvalidArgument && idempotent && p.Resent)
            {
                p.TrySetException(ResentTooOld(p));
            }
            else if (status == ErrorCode.ProducerFenced)
            {
                p.TrySetException(new BrokerClientException(status, $"the server refused a message to '{p.Topic}': another client instance started with producer id {ProducerId:x16} and took it over (this one is fenced; it was not stored)"));
            }
            else
            {
                p.TrySetException(new BrokerClientException(status, $"the server refused a message to '{p.Topic}'{RefusalReason(status)}"));
            }

            p.Release();
        }

        confirmed.Clear();
        if (failed > 0)
        {
            Emit(BrokerClientEventKind.PublishFailed, $"{failed} fire-and-forget message(s) refused: {failedCode}", failedCode, count: failed);
        }
    }

    /// <summary>
    /// What a CONFIRM status means for a message (a CONFIRM range carries a code, no text; docs/protocol.md section 6), so
    /// that the exception says why: ": " and the causes, or "" for a code without a known meaning here.
    /// </summary>
    internal static string RefusalReason(ErrorCode status) => status switch
    {
        ErrorCode.InvalidName => ": not a valid topic name (dot-separated tokens, docs/protocol.md)",
        ErrorCode.UnknownTopic => ": the topic does not exist and the server does not create topics on first use",
        ErrorCode.MessageTooLarge => ": larger than the topic's record limit; not stored",
        ErrorCode.StorageFull => ": the server's disk is full; not stored",
        ErrorCode.StorageError => ": the server could not write it (I/O error, or the topic could not be created on disk); not stored",
        ErrorCode.ResourceExhausted => ": the topic's journal could not be opened or rolled now (out of descriptors or memory); not stored, retry later",
        ErrorCode.Closed => ": the server is shutting down; not stored",
        ErrorCode.InvalidArgument => ": an invalid TTL, a durability the topic or server does not offer (Fsynced needs a topic configured Fsynced, the standby modes a failover pair), or a header the broker writes itself (fb-expires, fb-producer); not stored",
        ErrorCode.Forbidden => ": this connection's token may not publish to that topic; not stored",
        _ => "",
    };

    /// <summary>The failure path only (it copies the message): written on the primary, retry with the same sequence.</summary>
    private BrokerClientException NotReplicated(PendingPublish p) => new(
        ErrorCode.NotReplicated,
        $"a message to '{p.Topic}' (producer sequence {p.Sequence}) is written on the primary but the standby did not acknowledge it in time; retry it with RetryAsync(exception.Unconfirmed), not PublishAsync, or it may be stored twice")
    {
        Unconfirmed = UnconfirmedPublish.From(p, ProducerId),
    };

    /// <summary>
    /// The failure path only. A CONFIRM carries no reason; a resend refused with InvalidArgument is, unless the message
    /// itself is invalid (then its first copy was refused too), a sequence older than the broker's deduplication window:
    /// more publishes were unconfirmed than the window spans (protocol.md §6).
    /// </summary>
    private static BrokerClientException ResentTooOld(PendingPublish p) => new(
        ErrorCode.InvalidArgument,
        $"the server refused a message to '{p.Topic}' resent after a reconnect (producer sequence {p.Sequence}): unless its TTL, durability or headers are invalid, the sequence is older than the broker's deduplication window, so the broker cannot tell whether the copy sent before the connection was lost is stored, and refuses it rather than store it twice; it may or may not be stored and is not resent again (keep MaxInFlight at most the broker's ProducerWindow)");

    /// <summary>Reader loop: an ERROR naming a publish's request id (a frame-level problem).</summary>
    private bool TryFailPublish(ulong requestId, BrokerClientException error)
    {
        PendingPublish? p;
        lock (_sync)
        {
            if (!_byRequestId.Remove(requestId, out p))
            {
                return false;
            }

            UnlinkLocked(p);
            _inFlight--;
            AdmitWaitingLocked();
        }

        p.TrySetException(error);
        p.Release();
        return true;
    }
}
