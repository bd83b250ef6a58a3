using System.Text;
using FastBroker.Protocol;

namespace FastBroker.Server.Internal;

/// <summary>Work-queue groups: JOIN_GROUP, ACK and NACK.</summary>
internal sealed partial class Session
{
    internal void OnJoinGroup(in FrameHeader header, in JoinGroupFrame frame)
    {
        if (!EnsureOpen(header) || !EnsureGranted(header, ProtocolFeatures.WorkQueues, "JOIN_GROUP"))
        {
            return;
        }

        var id = header.RequestId;
        if (!CheckNewConsumer(id, frame.SubscriptionId))
        {
            return;
        }

        var topic = Encoding.UTF8.GetString(frame.Topic);
        var group = Encoding.UTF8.GetString(frame.Group);
        if (TopicName.IsValid(topic) && !_policy.CanSubscribe(topic))
        {
            SendError(id, ErrorCode.Forbidden, $"JOIN_GROUP: this token may not read '{topic}'");
            return;
        }

        if (CreationForbidden(frame.Topic, topic))
        {
            SendError(id, ErrorCode.Forbidden, $"JOIN_GROUP: topic '{topic}' does not exist, and this token may not create it (it may not publish to it)");
            return;
        }

        if (ScopedName(id, "JOIN_GROUP", "group", group) is not { } scopedGroup)
        {
            return;
        }

        group = scopedGroup;

        var defaults = GroupOptions.Default;
        var prefetch = (int)Math.Min(frame.Prefetch, int.MaxValue);
        var options = defaults with
        {
            Prefetch = prefetch,
            VisibilityTimeout = frame.VisibilityTimeoutMs == 0 ? defaults.VisibilityTimeout : TimeSpan.FromMilliseconds(frame.VisibilityTimeoutMs),
            MaxDeliveries = frame.MaxDeliveries == 0 ? defaults.MaxDeliveries : frame.MaxDeliveries,
        };
        WorkQueueMember member;
        try
        {
            member = _broker.JoinGroup(topic, group, options, prefetch);
        }
        catch (Exception e)
        {
            SendError(id, MapException(e, "JOIN_GROUP"), e.Message);
            return;
        }

        SendOk(id, 0);
        AddConsumer(new MemberConsumer(this, frame.SubscriptionId, member));
    }

    internal void OnAck(in FrameHeader header, in AckFrame frame)
    {
        if (!EnsureOpen(header) || !EnsureGranted(header, ProtocolFeatures.WorkQueues, "ACK") || FindMember(header, frame.SubscriptionId) is not { } m)
        {
            return;
        }

        var failed = 0;
        foreach (var tag in frame)
        {
            if (!TryAck(m.Member, tag))
            {
                failed++;
            }
        }

        if (failed > 0)
        {
            SendError(header.RequestId, ErrorCode.UnknownDelivery, $"ACK: {failed} of {frame.Count} delivery tags are not outstanding (already acked, redelivered or unknown)", subscriptionId: frame.SubscriptionId);
        }
    }

    internal void OnNack(in FrameHeader header, in NackFrame frame)
    {
        if (!EnsureOpen(header) || !EnsureGranted(header, ProtocolFeatures.WorkQueues, "NACK") || FindMember(header, frame.SubscriptionId) is not { } m)
        {
            return;
        }

        var tag = frame.Tag;
        WorkQueueOutcome outcome;
        try
        {
            outcome = tag.Offset > long.MaxValue || tag.DeliveryCount > int.MaxValue
                ? WorkQueueOutcome.UnknownDelivery
                : m.Member.Nack((long)tag.Offset, (int)tag.DeliveryCount, frame.Requeue, TimeSpan.FromMilliseconds(frame.DelayMs), frame.ErrorText.IsEmpty ? null : Encoding.UTF8.GetString(frame.ErrorText));
        }
        catch (Exception e)
        {
            SendError(header.RequestId, MapException(e, "NACK"), e.Message, subscriptionId: frame.SubscriptionId);
            return;
        }

        if (outcome == WorkQueueOutcome.UnknownDelivery)
        {
            SendError(header.RequestId, ErrorCode.UnknownDelivery, $"NACK: delivery {tag} is not outstanding (already acked, redelivered or unknown)", subscriptionId: frame.SubscriptionId);
        }
    }

    /// <summary>
    /// True when using <paramref name="topic"/> (a concrete, valid name) would create it — the broker auto-creates a topic
    /// a JOIN_GROUP or a SUBSCRIBE names — and this token may not publish to it: creating a topic is a write. Request-reply
    /// inboxes (<c>_inbox.</c>, <c>_reply.</c>), which the broker creates for their readers whatever its settings, are not
    /// refused.
    /// </summary>
    private bool CreationForbidden(ReadOnlySpan<byte> topicUtf8, string topic) =>
        !_policy.PublishUnrestricted && _broker.Options.AutoCreateTopics
        && !topic.StartsWith("_inbox.", StringComparison.Ordinal) && !topic.StartsWith("_reply.", StringComparison.Ordinal)
        && !_policy.CanPublish(topicUtf8) && !_broker.TopicExists(topic);

    /// <summary>
    /// The broker's name for a durable subscription or group the client calls <paramref name="name"/>: the same without
    /// tokens, else prefixed with the token's scope (<see cref="TenantScope"/>), so tokens of other tenants neither take
    /// it over nor join it. Null (the ERROR sent) when the name is too long to take the prefix.
    /// </summary>
    private string? ScopedName(ulong requestId, string frame, string what, string name)
    {
        if (_policy.Scope is not { } scope)
        {
            return name;
        }

        if (scope.Name(name, out var tooLong) is { } scoped)
        {
            return scoped;
        }

        if (tooLong)
        {
            SendError(requestId, ErrorCode.InvalidName, $"{frame}: a {what} name is at most {scope.MaxNameLength} characters on a connection with an access token (the server prefixes it with the token's scope, {scope.Prefix.Length} characters; the broker's limit is {TopicName.MaxStateNameLength}), got {name.Length}");
            return null;
        }

        return name; // not a valid name: the broker refuses it in its own words
    }

    private static bool TryAck(WorkQueueMember member, DeliveryTag tag)
    {
        if (tag.Offset > long.MaxValue || tag.DeliveryCount > int.MaxValue)
        {
            return false;
        }

        try
        {
            return member.Ack((long)tag.Offset, (int)tag.DeliveryCount);
        }
        catch (Exception)
        {
            return false;
        }
    }

    private MemberConsumer? FindMember(in FrameHeader header, uint subscriptionId)
    {
        if (FindConsumer(header, subscriptionId) is not { } consumer)
        {
            return null;
        }

        if (consumer is MemberConsumer m)
        {
            return m;
        }

        SendError(header.RequestId, ErrorCode.UnknownSubscription, $"{FrameTypes.GetName(header.Type)}: {subscriptionId} is a subscription, not a group membership", subscriptionId: subscriptionId);
        return null;
    }
}
