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
/// <para>
/// Whatever happens once the slots are claimed, every one of them is published, since the broker's pipeline waits on
/// each claimed sequence in turn: a claim left neither committed nor published would stall every publisher of the
/// broker. An exception out of <see cref="Add"/> (one the broker has no code for: a bug, an
/// <see cref="OutOfMemoryException"/>), and a <see cref="Commit"/> called with slots unfilled, <i>abandon</i> the
/// claim before the exception reaches the caller: each slot is published as a refusal, reported to its sink with
/// code 17 (the wire's <c>Internal</c>, <see cref="AbandonedCode"/>), none stored; a slot the caller filled with a
/// refusal of its own keeps it; a slot never filled tells nobody. A caller whose own code may throw between the claim
/// and <see cref="Commit"/> calls <see cref="Dispose"/> in a <c>finally</c>: it abandons a claim not committed, and
/// does nothing after <see cref="Commit"/> or an abandon. An abandoned claim takes no further <see cref="Add"/> or
/// <see cref="Commit"/> (<see cref="InvalidOperationException"/>).
/// </para>
/// <para>
/// Copies of a claim (it is a struct: passed by value, assigned) share its slots, and whether the claim is over is
/// read from the ring, not from the copy: once any copy has committed or abandoned it, <see cref="Dispose"/> on
/// another does nothing and its <see cref="Add"/>/<see cref="Commit"/> throw, so no copy publishes the slots twice or
/// writes into a slot another publisher has claimed since. Filling one claim through two copies is still a usage
/// error (each counts its own adds). The <c>default</c> claim (what <see cref="Broker.TryBeginPublish"/> gives when
/// it returns false) disposes as a no-op and throws on <see cref="Add"/>/<see cref="Commit"/>.
/// </para>
/// </summary>
public ref struct PublishClaim
{
    /// <summary>
    /// The code of the messages of an abandoned claim: 17, the value of the wire's <c>Internal</c> (a failure with no
    /// code of its own, <see cref="BrokerErrorCode"/>), which the server sends as it is.
    /// </summary>
    internal const BrokerErrorCode AbandonedCode = (BrokerErrorCode)17;

    private readonly Broker _broker;
    private readonly long _first;
    private readonly int _count;
    private int _filled;
    private bool _over; // committed or abandoned: its slots are published
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
    /// <exception cref="InvalidOperationException">All slots are filled already, or the claim is committed or abandoned.</exception>
    public void Add(ReadOnlySpan<byte> topicUtf8, in ReadOnlySequence<byte> key, in ReadOnlySequence<byte> headers, in ReadOnlySequence<byte> payload, in PublishParameters parameters, IPublishConfirmSink? sink, ulong token)
    {
        var entry = Next();
        try
        {
            Fill(entry, topicUtf8, key, headers, payload, parameters, sink, token);
        }
        catch (Exception e)
        {
            Abandon($"the publish failed unexpectedly before it reached the journal, not stored: {e.GetType().Name}: {e.Message}", adding: true, sink, token);
            throw;
        }
    }

    /// <summary>Fills the next slot with a refusal decided by the caller (e.g. <c>Forbidden</c>), keeping confirmations in order.</summary>
    /// <exception cref="InvalidOperationException">All slots are filled already, or the claim is committed or abandoned.</exception>
    public void AddFailed(BrokerErrorCode code, string reason, IPublishConfirmSink? sink, ulong token) => Next().FillFailed(code, reason, sink, token);

    /// <summary>Publishes every claimed slot. Call after exactly <see cref="Count"/> adds.</summary>
    /// <exception cref="InvalidOperationException">Fewer slots were filled than claimed (the claim is abandoned), or the claim is committed or abandoned already.</exception>
    public void Commit()
    {
        ThrowIfOver();
        if (_filled != _count)
        {
            var message = $"PublishClaim: {_filled} of {_count} slots filled; fill them all before Commit";
            Abandon($"the claim was committed with slots unfilled, not stored: {message}", adding: false, null, 0);
            throw new InvalidOperationException(message);
        }

        _over = true;
        _broker.Ring.Publish(_first, _first + _count - 1);
    }

    /// <summary>
    /// Abandons the claim if it is neither committed nor abandoned (see the type's remarks): every slot is published, the
    /// messages added so far are reported failed with <see cref="AbandonedCode"/>. Call it in a <c>finally</c> around
    /// code that may throw between the claim and <see cref="Commit"/>; a no-op after either.
    /// </summary>
    public void Dispose()
    {
        if (!_over && _broker is not null && !_broker.Ring.HasPublished(_first))
        {
            Abandon("the publisher failed before committing its claim, not stored", adding: false, null, 0);
        }
    }

    private void Fill(PublishEntry entry, ReadOnlySpan<byte> topicUtf8, in ReadOnlySequence<byte> key, in ReadOnlySequence<byte> headers, in ReadOnlySequence<byte> payload, in PublishParameters parameters, IPublishConfirmSink? sink, ulong token)
    {
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

        if (parameters.ProducerId != 0 && parameters.ProducerSequence == ulong.MaxValue)
        {
            // No sequence: the producer's window keeps sequence + 1 (0 = an empty slot), so this one was never found
            // again and a retry of it was stored a second time; one past it would be 0.
            entry.FillFailed(BrokerErrorCode.InvalidArgument, $"producer {parameters.ProducerId:x16}: sequence {ulong.MaxValue} (2^64 - 1) is past the last one, 2^64 - 2: not stored", sink, token);
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

    private PublishEntry Next()
    {
        ThrowIfOver();
        if (_filled >= _count)
        {
            var message = $"PublishClaim: all {_count} slots are already filled";
            Abandon($"the claim's publisher added more than it claimed, not stored: {message}", adding: false, null, 0);
            throw new InvalidOperationException(message);
        }

        return _broker.Ring[_first + _filled++];
    }

    private readonly void ThrowIfOver()
    {
        if (_broker is null)
        {
            throw new InvalidOperationException("PublishClaim: no slots were claimed (TryBeginPublish returned false)");
        }

        // A copy of this claim may have committed or abandoned it: the ring knows, this copy's flag does not.
        if (_over || _broker.Ring.HasPublished(_first))
        {
            throw new InvalidOperationException("PublishClaim: the claim is committed or abandoned already");
        }
    }

    /// <summary>
    /// Publishes every slot as a refusal (<see cref="AbandonedCode"/>): those filled keep their sink (and a refusal its
    /// own code), the one an <see cref="Add"/> was filling when it threw (<paramref name="adding"/>) gets that add's
    /// <paramref name="sink"/>, the others tell nobody.
    /// </summary>
    private void Abandon(string reason, bool adding, IPublishConfirmSink? sink, ulong token)
    {
        _over = true;
        var ring = _broker.Ring;
        var filled = adding ? _filled - 1 : _filled;
        for (var i = 0; i < _count; i++)
        {
            var entry = ring[_first + i];
            if (i < filled)
            {
                if (entry.Error == BrokerErrorCode.None)
                {
                    entry.FillFailed(AbandonedCode, reason, entry.Sink, entry.Token);
                }
            }
            else if (i == filled && adding)
            {
                entry.FillFailed(AbandonedCode, reason, sink, token);
            }
            else
            {
                entry.FillFailed(AbandonedCode, reason, null, 0);
            }
        }

        ring.Publish(_first, _first + _count - 1);
    }
}
