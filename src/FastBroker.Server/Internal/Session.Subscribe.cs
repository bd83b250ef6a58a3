using System.Buffers;
using System.Text;
using System.Text.Unicode;
using FastBroker.Filtering;
using FastBroker.Protocol;

namespace FastBroker.Server.Internal;

/// <summary>Subscriptions: SUBSCRIBE (start positions, header filters, durable names taken over) and COMMIT.</summary>
internal sealed partial class Session
{
    internal void OnSubscribe(in FrameHeader header, in SubscribeFrame frame)
    {
        if (!EnsureOpen(header) || (!frame.Filters.IsEmpty && !EnsureGranted(header, ProtocolFeatures.HeaderFilters, "a header filter")))
        {
            return;
        }

        var id = header.RequestId;
        if (!CheckNewConsumer(id, frame.SubscriptionId))
        {
            return;
        }

        var pattern = Encoding.UTF8.GetString(frame.Pattern);
        if (!TopicPattern.TryParse(pattern, out var parsed, out var why))
        {
            SendError(id, ErrorCode.InvalidName, $"SUBSCRIBE: invalid topic pattern '{ClientText.Quote(pattern)}': {why}");
            return;
        }

        if (!_policy.CanSubscribe(pattern))
        {
            SendError(id, ErrorCode.Forbidden, $"SUBSCRIBE: this token may not read '{pattern}'");
            return;
        }

        if (!parsed.HasWildcards && CreationForbidden(frame.Pattern, pattern))
        {
            SendError(id, ErrorCode.Forbidden, $"SUBSCRIBE: topic '{pattern}' does not exist, and this token may not create it (it may not publish to it)");
            return;
        }

        Dictionary<string, string>? filters = null;
        List<(byte[] Name, byte[] Value)>? taken = null;
        foreach (var filter in frame.Filters)
        {
            // A name is a header entry's str8, which the parser has checked is valid UTF-8 (one that is not is a
            // malformed SUBSCRIBE, and the connection closes): decoding it replaces nothing, so two names stay two.
            var key = Encoding.UTF8.GetString(filter.Name);
            var value = filter.Value.ToArray();
            if (!Utf8.IsValid(value))
            {
                SendError(id, ErrorCode.InvalidArgument, "SUBSCRIBE: " + HeaderFilterRules.ValueNotUtf8(key));
                return;
            }

            var text = Encoding.UTF8.GetString(value);
            if (HeaderFilterRules.TryAdd(taken ??= [], key, text) is { } refused)
            {
                // The rules the embedded broker and the .NET client apply, in their words: a filter on fb-expires or
                // fb-producer, or two values for one name (the others cannot arrive in a well-formed header block of
                // UTF-8 values). One value per name, as the embedded broker's SubscriptionOptions.HeaderFilters (a
                // dictionary) and the .NET client's Filters take (docs/protocol.md, SUBSCRIBE).
                SendError(id, ErrorCode.InvalidArgument, "SUBSCRIBE: " + refused);
                return;
            }

            filters ??= new(StringComparer.Ordinal);
            filters[key] = text;
        }

        StartPosition start;
        switch (frame.Start)
        {
            case Protocol.StartKind.Earliest:
                start = StartPosition.Earliest;
                break;
            case Protocol.StartKind.Offset when frame.StartValue > long.MaxValue:
                SendError(id, ErrorCode.InvalidArgument, "SUBSCRIBE: startValue is not a valid offset");
                return;
            case Protocol.StartKind.Offset:
                start = StartPosition.AtOffset((long)frame.StartValue);
                break;
            case Protocol.StartKind.Timestamp:
                // The broker keeps milliseconds: the first message at or after t ns is the first at or after ceil(t / 1e6) ms
                // (StartPosition.AtTime rounds a DateTimeOffset up alike; docs/protocol.md, SUBSCRIBE).
                start = StartPosition.AtTime(DateTimeOffset.FromUnixTimeMilliseconds((long)((frame.StartValue / 1_000_000) + (frame.StartValue % 1_000_000 == 0 ? 0UL : 1UL))));
                break;
            case Protocol.StartKind.Committed:
                start = StartPosition.Committed;
                break;
            default:
                start = StartPosition.Latest;
                break;
        }

        string? durableName = null;
        if (!frame.DurableName.IsEmpty)
        {
            durableName = ScopedName(id, "SUBSCRIBE", "durable", Encoding.UTF8.GetString(frame.DurableName));
            if (durableName is null)
            {
                return;
            }
        }

        var options = new SubscriptionOptions
        {
            Start = start,
            DurableName = durableName,
            HeaderFilters = filters,
        };
        if (options.DurableName is { } durable)
        {
            // From the broker's subscribe to the consumer's add the name is held but YieldDurable cannot find it: a
            // takeover landing then would be refused. Durable subscribes of one name take turns (a takeover waits).
            _options.TestHook?.Invoke("durable-waiting", Id);
            var gate = _server.AcquireDurableGate(durable);
            try
            {
                lock (gate)
                {
                    SubscribeAndAdd(id, frame, pattern, options);
                }
            }
            finally
            {
                _server.ReleaseDurableGate(durable, gate);
            }
        }
        else
        {
            SubscribeAndAdd(id, frame, pattern, options);
        }
    }

    /// <summary>The broker's subscribe, the OK and the consumer's add, under the name's gate for a durable one.</summary>
    private void SubscribeAndAdd(ulong id, in SubscribeFrame frame, string pattern, SubscriptionOptions options)
    {
        Subscription? subscription = null;
        try
        {
            subscription = SubscribeTakingOver(pattern, options);
            if (options.DurableName is not null)
            {
                _options.TestHook?.Invoke("durable-subscribed", Id);
            }

            if (frame.Start == Protocol.StartKind.Committed && frame.Fallback == Protocol.StartKind.Latest && NothingCommitted(subscription))
            {
                // The broker falls back to Earliest; the client asked for Latest.
                subscription.Dispose();
                subscription = _broker.Subscribe(pattern, options with { Start = StartPosition.Latest });
            }
            else if (frame.Start == Protocol.StartKind.Offset && frame.Fallback == Protocol.StartKind.Earliest && Granted(ProtocolFeatures.OffsetFallback)
                && StartsBelow(subscription, pattern, (long)frame.StartValue))
            {
                // The topic's head is below the resume offset: its offsets went back (a transient topic after a
                // restart). What it holds was all stored since, so the client asked for it rather than the head
                // (its reply inbox: a reply stored before it resubscribed; docs/protocol.md, SUBSCRIBE). Only with the
                // feature granted: the WELCOME told the client this rule holds; another gets the head, as from a server
                // that predates the rule.
                subscription.Dispose();
                subscription = _broker.Subscribe(pattern, options with { Start = StartPosition.Earliest });
            }
        }
        catch (Exception e)
        {
            // A subscription taken before the failure would hold its durable name with no consumer to yield it, so a
            // retry (or a takeover) would be refused with DurableNameInUse for as long as the server runs.
            subscription?.Dispose();
            SendError(id, MapException(e, "SUBSCRIBE"), e.Message);
            return;
        }

        // A concrete topic: the position it starts from. A wildcard pattern covers several topics: 0 (docs/server.md).
        ulong first = 0;
        if (!subscription.Pattern.HasWildcards && subscription.Positions.TryGetValue(pattern, out var position))
        {
            first = (ulong)position;
        }

        var consumer = new SubscriptionConsumer(this, frame.SubscriptionId, subscription, frame.InitialCredit)
        {
            MissedReported = subscription.Missed,
        };

        // The OK is queued before the writer can see the subscription, so it precedes every delivery.
        SendOk(id, first);
        AddConsumer(consumer);
    }

    /// <summary>
    /// Subscribes; a durable name that another connection's subscription holds is taken over from it (that one ends with
    /// SUBSCRIPTION_ENDED, <see cref="ErrorCode.DurableNameInUse"/>), as a new producer instance fences the old one: a
    /// client that reconnects resubscribes before this server may have seen its old connection close (a half-open one
    /// only ends with the idle timeout), and a consumer restarted at once must not be refused by its own dead
    /// connection. A name held on this connection, or by an embedded subscription, is refused.
    /// </summary>
    private Subscription SubscribeTakingOver(string pattern, SubscriptionOptions options)
    {
        try
        {
            return _broker.Subscribe(pattern, options);
        }
        catch (BrokerException e) when (e.Code == BrokerErrorCode.DurableNameInUse)
        {
            // Once more also when no connection had it: the holder may have closed meanwhile.
            _options.TestHook?.Invoke("durable-takeover", Id);
            _server.TakeOverDurable(options.DurableName!, this);
            return _broker.Subscribe(pattern, options);
        }
    }

    /// <summary>
    /// Ends this connection's subscription with durable name <paramref name="durableName"/>, if it has one: another
    /// connection takes the name over. Any thread; the client is told with SUBSCRIPTION_ENDED.
    /// </summary>
    internal bool YieldDurable(string durableName, ulong takenBy)
    {
        SubscriptionConsumer? found = null;
        lock (_consumersGate)
        {
            foreach (var c in _consumers.Values)
            {
                if (c is SubscriptionConsumer s && s.Subscription.Options.DurableName == durableName)
                {
                    found = s;
                    break;
                }
            }

            if (found is not null)
            {
                _consumers.Remove(found.Id);
                _consumerList = [.. _consumers.Values];
            }
        }

        if (found is null)
        {
            return false;
        }

        // Close waits for a fetch in progress; the subscription's position file is closed and its name free on return.
        found.Close();
        SendError(0, ErrorCode.DurableNameInUse, $"durable subscription '{durableName}' was taken over by connection {takenBy}", ErrorFlags.SubscriptionEnded, found.Id);
        return true;
    }

    /// <summary>A concrete topic's subscription that starts below <paramref name="offset"/> (clamped to the head).</summary>
    private static bool StartsBelow(Subscription subscription, string topic, long offset) =>
        !subscription.Pattern.HasWildcards && subscription.Positions.TryGetValue(topic, out var position) && position < offset;

    internal void OnCommit(in FrameHeader header, uint subscriptionId, ulong offset, ReadOnlySpan<byte> topicUtf8)
    {
        var id = header.RequestId;
        if (!EnsureOpen(header) || FindConsumer(header, subscriptionId) is not { } consumer)
        {
            return;
        }

        if (consumer is not SubscriptionConsumer s || s.Subscription.Options.DurableName is null)
        {
            SendError(id, ErrorCode.InvalidArgument, $"COMMIT: subscription {subscriptionId} is not a durable subscription");
            return;
        }

        string topic;
        if (topicUtf8.IsEmpty)
        {
            if (s.Subscription.Pattern.HasWildcards)
            {
                SendError(id, ErrorCode.InvalidArgument, "COMMIT: a wildcard subscription must name the topic the offset belongs to");
                return;
            }

            topic = s.Subscription.Pattern.Text;
        }
        else
        {
            topic = Encoding.UTF8.GetString(topicUtf8);
            if (!s.Subscription.Pattern.Matches(topic) || !TopicName.IsValid(topic))
            {
                SendError(id, ErrorCode.InvalidArgument, $"COMMIT: subscription {subscriptionId} does not cover topic '{ClientText.Quote(topic)}'");
                return;
            }
        }

        long committed;
        ValueTask replicated;
        try
        {
            // The client's offset (last processed + 1) is what gets stored, per topic; on the primary of a failover
            // pair in a standby ack mode the answer also waits for the standby to hold it.
            lock (s.Gate)
            {
                if (s.Closed)
                {
                    SendError(id, ErrorCode.UnknownSubscription, $"COMMIT: subscription {subscriptionId} is not open");
                    return;
                }

                if (offset > long.MaxValue)
                {
                    SendError(id, ErrorCode.InvalidArgument, $"COMMIT: offset {offset} is out of range");
                    return;
                }

                replicated = s.Subscription.CommitAsync(topic, (long)offset);
                committed = (long)offset;
            }
        }
        catch (Exception e)
        {
            SendError(id, MapException(e, "COMMIT"), e.Message);
            return;
        }

        if (replicated.IsCompletedSuccessfully)
        {
            SendOk(id, (ulong)committed);
        }
        else
        {
            _ = AnswerCommitAsync(id, committed, replicated);
        }
    }

    private async Task AnswerCommitAsync(ulong requestId, long committed, ValueTask replicated)
    {
        try
        {
            await replicated.ConfigureAwait(false);
            SendOk(requestId, (ulong)committed);
        }
        catch (Exception e)
        {
            SendError(requestId, MapException(e, "COMMIT"), e.Message);
        }
    }

    private static bool NothingCommitted(Subscription subscription)
    {
        foreach (var topic in subscription.Positions.Keys)
        {
            if (subscription.CommittedOffset(topic) is not null)
            {
                return false;
            }
        }

        return true;
    }
}
