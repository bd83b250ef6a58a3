using FastBroker.Journal;
using FastBroker.Protocol;
using FastBroker.Storage;

namespace FastBroker.Server.Internal;

/// <summary>The connection's consumers by subscription id: UNSUBSCRIBE, CREDIT, the lookups and error codes the consumer frames share, closing them all.</summary>
internal sealed partial class Session
{
    private readonly object _consumersGate = new();
    private readonly Dictionary<uint, Consumer> _consumers = [];
    private Consumer[] _consumerList = [];

    internal void OnUnsubscribe(in FrameHeader header, uint subscriptionId)
    {
        if (!EnsureOpen(header))
        {
            return;
        }

        Consumer? consumer;
        lock (_consumersGate)
        {
            if (_consumers.Remove(subscriptionId, out consumer))
            {
                _consumerList = [.. _consumers.Values];
            }
        }

        if (consumer is null)
        {
            SendError(header.RequestId, ErrorCode.UnknownSubscription, $"UNSUBSCRIBE: subscription {subscriptionId} is not open");
            return;
        }

        // Close waits for a fetch in progress; deliveries written before it precede the OK, none follow it.
        consumer.Close();
        SendOk(header.RequestId, 0);
    }

    internal void OnCredit(in FrameHeader header, uint subscriptionId, uint credit)
    {
        if (!EnsureOpen(header) || FindConsumer(header, subscriptionId) is not { } consumer)
        {
            return;
        }

        if (consumer is MemberConsumer m)
        {
            try
            {
                m.Member.AddPrefetch((int)Math.Min(credit, int.MaxValue));
            }
            catch (Exception e)
            {
                SendError(header.RequestId, MapException(e, "CREDIT"), e.Message);
                return;
            }
        }
        else
        {
            consumer.AddCredit(credit);
        }

        _signal.Set();
    }

    private bool CheckNewConsumer(ulong requestId, uint subscriptionId)
    {
        lock (_consumersGate)
        {
            if (_consumers.ContainsKey(subscriptionId))
            {
                SendError(requestId, ErrorCode.SubscriptionIdInUse, $"subscription id {subscriptionId} is already open on this connection");
                return false;
            }

            if (_consumers.Count >= _options.MaxSubscriptionsPerConnection)
            {
                SendError(requestId, ErrorCode.TooManySubscriptions, $"this connection already has {_consumers.Count} subscriptions and memberships (the limit)");
                return false;
            }
        }

        return true;
    }

    private void AddConsumer(Consumer consumer)
    {
        lock (_consumersGate)
        {
            _consumers[consumer.Id] = consumer;
            _consumerList = [.. _consumers.Values];
        }

        _ = consumer.WatchAsync();
        _signal.Set();
    }

    private Consumer? FindConsumer(in FrameHeader header, uint subscriptionId)
    {
        Consumer? consumer;
        lock (_consumersGate)
        {
            _consumers.TryGetValue(subscriptionId, out consumer);
        }

        if (consumer is null)
        {
            SendError(header.RequestId, ErrorCode.UnknownSubscription, $"{FrameTypes.GetName(header.Type)}: subscription {subscriptionId} is not open", subscriptionId: subscriptionId);
        }

        return consumer;
    }

    /// <summary>
    /// Ends the connection's work-queue memberships once its reader has stopped (the client's end of stream, a protocol
    /// error, the server's stop): no ACK or NACK can come from it any more, so their deliveries go back to the group at
    /// once, not after the close's confirmation drain (up to 5 s), and none is written to it meanwhile to count as an
    /// attempt. Subscriptions stay until the close: a client that is done sending may still read them.
    /// </summary>
    private void ReleaseMembers()
    {
        List<Consumer>? members = null;
        lock (_consumersGate)
        {
            foreach (var c in _consumers.Values)
            {
                if (c is MemberConsumer)
                {
                    (members ??= []).Add(c);
                }
            }

            if (members is null)
            {
                return;
            }

            foreach (var m in members)
            {
                _consumers.Remove(m.Id);
            }

            _consumerList = [.. _consumers.Values];
        }

        // As UNSUBSCRIBE: Close waits for a fetch in progress, and the writer skips a closed consumer.
        foreach (var m in members)
        {
            m.Close();
        }
    }

    private void CloseConsumers()
    {
        Consumer[] all;
        lock (_consumersGate)
        {
            all = [.. _consumers.Values];
        }

        foreach (var c in all)
        {
            c.Close();
        }

        // Removed once closed: a takeover of a durable name (YieldDurable) meanwhile finds its subscription and waits
        // for the close, rather than find nothing while the name is still held.
        lock (_consumersGate)
        {
            _consumers.Clear();
            _consumerList = [];
        }
    }

    /// <summary>
    /// The ERROR code for <paramref name="e"/>: a <see cref="BrokerException"/>'s own, <see cref="ErrorCode.Closed"/> for a
    /// broker object disposed under the request, <see cref="ErrorCode.ResourceExhausted"/> for a shortage the system may
    /// get over (<see cref="ResourceShortage"/>: descriptors, memory, disk space…, also inside a
    /// <see cref="JournalException"/>), <see cref="ErrorCode.StorageError"/> for any other I/O or journal failure (the
    /// file as it is), <see cref="ErrorCode.InvalidArgument"/> for an <see cref="ArgumentException"/> (an argument the
    /// broker's API refused), and <see cref="ErrorCode.Internal"/> for any other exception: the server's own failure,
    /// not the client's.
    /// </summary>
    /// <param name="e">The failure.</param>
    /// <param name="what">What failed, for the log line.</param>
    /// <param name="clientInput">
    /// False where no input of the client's is handled (a delivery): an <see cref="ArgumentException"/>, or a
    /// <see cref="BrokerException"/> with <see cref="BrokerErrorCode.InvalidArgument"/>, is then an argument the server
    /// passed itself, its bug, answered with <see cref="ErrorCode.Internal"/> (and logged) rather than telling the client
    /// its request was wrong.
    /// </param>
    private ErrorCode MapException(Exception e, string what, bool clientInput = true)
    {
        switch (e)
        {
            case ArgumentException or BrokerException { Code: BrokerErrorCode.InvalidArgument } when !clientInput:
                LogError(what, e);
                return ErrorCode.Internal;
            case BrokerException b:
                return ToWire(b.Code);
            case ObjectDisposedException:
                return ErrorCode.Closed;
            case IOException or OutOfMemoryException or JournalException when ResourceShortage.Is(e):
                // The system could not do it now (out of descriptors or memory…): the client may try again later.
                LogError(what, e);
                return ErrorCode.ResourceExhausted;
            case IOException or UnauthorizedAccessException or JournalException:
                LogError(what, e);
                return ErrorCode.StorageError;
            case ArgumentException:
                LogError(what, e);
                return ErrorCode.InvalidArgument;
            default:
                // A bug (InvalidOperationException, NullReferenceException…): InvalidArgument would tell the client to
                // fix a request that was fine.
                LogError(what, e);
                return ErrorCode.Internal;
        }
    }
}
