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
