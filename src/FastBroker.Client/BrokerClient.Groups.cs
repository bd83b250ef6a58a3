using FastBroker.Client.Internal;
using FastBroker.Protocol;

namespace FastBroker.Client;

/// <summary>Work-queue groups: join, ack, nack.</summary>
public sealed partial class BrokerClient
{
    /// <summary>
    /// Joins work-queue <paramref name="group"/> over <paramref name="topic"/> (JOIN_GROUP, waits for the OK): each
    /// message goes to one member at a time, up to <see cref="GroupJoinOptions.Prefetch"/> unacknowledged per member.
    /// </summary>
    /// <remarks>
    /// After a reconnect the member rejoins by itself. Deliveries of the lost connection are requeued by the server
    /// and come again (to any member, <see cref="ClientMessage.DeliveryCount"/> + 1); the client drops the ones still
    /// buffered, and an ACK or NACK of a delivery from the lost connection is dropped silently (it could only be
    /// refused with <see cref="ErrorCode.UnknownDelivery"/>). A rejoin refused for good (e.g.
    /// <see cref="ErrorCode.StorageError"/>: the group's state file is damaged) ends the member with the server's code and
    /// reason; one refused for now (<see cref="ErrorCode.Closed"/>, <see cref="ErrorCode.NotPrimary"/>,
    /// <see cref="ErrorCode.Timeout"/>, <see cref="ErrorCode.ResourceExhausted"/>) is tried again on a new connection
    /// (<see cref="CreateSubscriptionAsync"/>).
    /// </remarks>
    /// <exception cref="BrokerClientException">The server refused (e.g. <see cref="ErrorCode.TopicConflict"/>: the group exists over another topic).</exception>
    public async ValueTask<GroupMember> JoinGroupAsync(string topic, string group, GroupJoinOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= GroupJoinOptions.Default;
        if ((Features & ProtocolFeatures.WorkQueues) == 0)
        {
            ThrowHelper.ThrowNotGranted(ProtocolFeatures.WorkQueues);
        }

        if (options.Prefetch < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.Prefetch, "Prefetch must be at least 1.");
        }

        var visibility = options.VisibilityTimeout is { } v ? v.TotalMilliseconds : 0;
        if (visibility < 0 || visibility > uint.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.VisibilityTimeout, "VisibilityTimeout must be 0 to 2^32 − 1 ms.");
        }

        if (options.MaxDeliveries is { } m && (m < 1 || m > ushort.MaxValue))
        {
            throw new ArgumentOutOfRangeException(nameof(options), m, "MaxDeliveries must be 1 to 65535.");
        }

        var state = new SubscriptionState(NextSubscriptionId(), SubscriptionKind.Group, topic, options.Prefetch)
        {
            Group = group,
            GroupUtf8 = Utf8Names.Encode(group, nameof(group)),
            VisibilityTimeoutMs = (uint)visibility,
            MaxDeliveries = (ushort)(options.MaxDeliveries ?? 0),
        };
        await OpenAsync(state, cancellationToken).ConfigureAwait(false);
        return new GroupMember(this, state);
    }

    /// <summary>Queues an ACK (coalesced with others of the same member into one frame).</summary>
    internal void Ack(SubscriptionState member, ClientMessage message)
    {
        CheckMember(member, message);
        lock (_sync)
        {
            if (_connection is null || message.Generation != _generation || member.Generation != _generation || member.Ended)
            {
                return; // the delivery died with its connection: the server redelivers it
            }

            member.PendingAcks.Add(message.Tag);
            if (!member.AckQueued)
            {
                member.AckQueued = true;
                _ackQueue.Add(member);
            }
        }

        _writeSignal.Set();
    }

    /// <summary>Queues a NACK.</summary>
    internal void Nack(SubscriptionState member, ClientMessage message, bool requeue, TimeSpan delay, string? error)
    {
        CheckMember(member, message);
        var delayMs = delay.TotalMilliseconds;
        if (delayMs < 0 || delayMs > uint.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(delay), delay, "Must be 0 to 2^32 − 1 ms.");
        }

        var text = error is null ? [] : Utf8Names.GetBytes(error, nameof(error));
        if (text.Length > ProtocolConstants.MaxShortBytesLength)
        {
            ThrowHelper.ThrowTooLong(nameof(error), text.Length, ProtocolConstants.MaxShortBytesLength);
        }

        lock (_sync)
        {
            if (_connection is null || message.Generation != _generation || member.Ended)
            {
                return;
            }

            _control.Add(new ControlOp(ControlKind.Nack, message.Generation, member)
            {
                Offset = (ulong)message.Offset,
                Value = (uint)message.DeliveryCount,
                Requeue = requeue,
                DelayMs = (uint)delayMs,
                Text = text,
            });
        }

        _writeSignal.Set();
    }

    private static void CheckMember(SubscriptionState member, ClientMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (message.Owner != member)
        {
            throw new ArgumentException("The message was delivered to another member or subscription.", nameof(message));
        }
    }
}
