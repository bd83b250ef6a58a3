using System.Buffers;
using FastBroker.Engine;

namespace FastBroker;

/// <summary>
/// A run of input-ring slots claimed by <see cref="Broker.TryBeginPublish"/>: fill each with <see cref="Add"/> (or
/// <see cref="AddFailed"/>), then <see cref="Commit"/> publishes them all at once. The outcomes come back through
/// each message's <see cref="IPublishConfirmSink"/>, in order. Nothing here throws for a bad message: an invalid or
/// unknown topic, a message too large, a bad TTL, a durability the topic cannot give or a header name the broker
/// writes itself (<see cref="Broker.ExpiresHeader"/>, <see cref="Broker.ProducerHeader"/>) take their slot as a
/// failure so confirmations keep their order. Allocation-free for existing topics.
/// </summary>
public ref struct PublishClaim
{
    private readonly Broker _broker;
    private readonly long _first;
    private readonly int _count;
    private int _filled;
    private Engine.TopicState? _lastTopic;

    internal PublishClaim(Broker broker, long first, int count)
    {
        _broker = broker;
        _first = first;
        _count = count;
    }

    /// <summary>Slots claimed.</summary>
    public readonly int Count => _count;

    /// <summary>Slots filled so far.</summary>
    public readonly int Filled => _filled;

    /// <summary>Fills the next slot with a message.</summary>
    /// <param name="topicUtf8">The topic name, UTF-8.</param>
    /// <param name="key">The key (may be empty).</param>
    /// <param name="headers">Header entries in the protocol's encoding (<c>u8 nameLength, name, u16 valueLength, value</c>, no block length); a name the broker writes itself fails the message with <see cref="BrokerErrorCode.InvalidArgument"/>.</param>
    /// <param name="payload">The payload.</param>
    /// <param name="parameters">TTL, durability, idempotent producer id and sequence.</param>
    /// <param name="sink">Receives the outcome (null: nobody is told).</param>
    /// <param name="token">Handed back to <paramref name="sink"/> (e.g. the request id).</param>
    public void Add(ReadOnlySpan<byte> topicUtf8, in ReadOnlySequence<byte> key, in ReadOnlySequence<byte> headers, in ReadOnlySequence<byte> payload, in PublishParameters parameters, IPublishConfirmSink? sink, ulong token)
    {
        var entry = Next();
        Engine.TopicState topic;
        if (_lastTopic is not null && topicUtf8.SequenceEqual(_lastTopic.NameUtf8))
        {
            topic = _lastTopic; // a batch usually goes to one topic: one lookup per claim
        }
        else if (_broker.Topics.TryGetForUse(topicUtf8, out topic, out var error, out var reason))
        {
            _lastTopic = topic;
        }
        else
        {
            entry.FillFailed(error, reason!, sink, token);
            return;
        }

        var size = key.Length + headers.Length + payload.Length + (parameters.TtlMs > 0 ? Broker.ExpiryHeaderSize : 0);
        if (key.Length > ushort.MaxValue || size > topic.Options.MaxMessageBytes)
        {
            entry.FillFailed(BrokerErrorCode.MessageTooLarge, $"message of {size} bytes exceeds the {topic.Options.MaxMessageBytes}-byte limit of topic '{topic.Name}'", sink, token);
            return;
        }

        bool waitDurable;
        var ackMode = AckMode.Local;
        switch (parameters.Durability)
        {
            case PublishDurability.TopicDefault:
                waitDurable = topic.Durability is not null;
                ackMode = topic.Persistent ? topic.Options.Acks : AckMode.Local;
                break;
            case PublishDurability.None:
                waitDurable = false;
                break;
            case PublishDurability.Written when topic.Persistent:
                waitDurable = false;
                break;
            case PublishDurability.Fsynced when topic.Durability is not null:
                waitDurable = true;
                break;
            case PublishDurability.StandbyReceived or PublishDurability.StandbyDurable when topic.Persistent && _broker.Replication is not null:
                waitDurable = topic.Durability is not null;
                ackMode = parameters.Durability == PublishDurability.StandbyReceived ? AckMode.StandbyReceived : AckMode.StandbyDurable;
                break;
            case PublishDurability.StandbyReceived or PublishDurability.StandbyDurable when _broker.Replication is null:
                entry.FillFailed(BrokerErrorCode.InvalidArgument, $"durability {parameters.Durability} needs a hot standby: this broker does not run as a failover pair", sink, token);
                return;
            default:
                entry.FillFailed(BrokerErrorCode.InvalidArgument, $"topic '{topic.Name}' cannot confirm with durability {parameters.Durability}: it is {(topic.Persistent ? topic.Options.Durability.ToString() : "transient")}", sink, token);
                return;
        }

        var expires = parameters.TtlMs > 0 ? DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + parameters.TtlMs : 0;
        entry.Fill(topic, key, headers, payload, expires, parameters.ProducerId, parameters.ProducerSequence, parameters.ProducerEpoch, waitDurable, ackMode, sink, token);

        // Checked on the copy, where the publisher's entries are contiguous whatever the received segments were.
        if (!headers.IsEmpty && ReservedHeaders.FindBrokerWritten(entry.Headers[..(int)headers.Length]) is { } reserved)
        {
            entry.FillFailed(BrokerErrorCode.InvalidArgument, reserved, sink, token);
        }
    }

    /// <summary>Fills the next slot with a refusal decided by the caller (e.g. <c>Forbidden</c>), keeping confirmations in order.</summary>
    public void AddFailed(BrokerErrorCode code, string reason, IPublishConfirmSink? sink, ulong token) => Next().FillFailed(code, reason, sink, token);

    /// <summary>Publishes every claimed slot. Call after exactly <see cref="Count"/> adds.</summary>
    /// <exception cref="InvalidOperationException">Fewer slots were filled than claimed.</exception>
    public readonly void Commit()
    {
        if (_filled != _count)
        {
            throw new InvalidOperationException($"PublishClaim: {_filled} of {_count} slots filled; fill them all before Commit");
        }

        _broker.Ring.Publish(_first, _first + _count - 1);
    }

    private PublishEntry Next()
    {
        if (_filled >= _count)
        {
            throw new InvalidOperationException($"PublishClaim: all {_count} slots are already filled");
        }

        return _broker.Ring[_first + _filled++];
    }
}
