using FastBroker.Client.Internal;
using FastBroker.Protocol;

namespace FastBroker.Client;

/// <summary>
/// A publish the server left in doubt: refused with <see cref="ErrorCode.NotReplicated"/>, so it <em>is</em> written on
/// the primary but the standby did not acknowledge it in time. It carries a copy of the message and its producer id
/// and sequence; <see cref="BrokerClient.RetryAsync"/> sends it again with that same sequence, so the broker stores it
/// at most once (a retry of a stored message is confirmed with the original offset, once the standby has it). Calling
/// <c>PublishAsync</c> again instead would give it a new sequence: the message could be stored twice.
/// </summary>
/// <remarks>Found in <see cref="BrokerClientException.Unconfirmed"/>. Immutable; may be retried any number of times.</remarks>
public sealed class UnconfirmedPublish
{
    private readonly byte[] _bytes; // key, headers, payload
    private readonly int _keyLength;
    private readonly int _headersLength;

    private UnconfirmedPublish(PendingPublish p, ulong producerId)
    {
        Topic = p.Topic;
        TopicLength = p.TopicLength;
        TtlMs = p.TtlMs;
        Durability = p.Durability;
        ProducerId = producerId;
        ProducerSequence = p.Sequence;
        _keyLength = p.KeyLength;
        _headersLength = p.HeadersLength;
        _bytes = new byte[p.KeyLength + p.HeadersLength + p.PayloadLength];
        p.Key.CopyTo(_bytes);
        p.Headers.CopyTo(_bytes.AsSpan(_keyLength));
        p.Payload.CopyTo(_bytes.AsSpan(_keyLength + _headersLength));
    }

    /// <summary>The topic it was published to.</summary>
    public string Topic { get; }

    /// <summary>The payload (a copy).</summary>
    public ReadOnlyMemory<byte> Payload => _bytes.AsMemory(_keyLength + _headersLength);

    /// <summary>The key (a copy); empty = none.</summary>
    public ReadOnlyMemory<byte> Key => _bytes.AsMemory(0, _keyLength);

    /// <summary>The time to live it was given; zero = none.</summary>
    public TimeSpan Ttl => TimeSpan.FromMilliseconds(TtlMs);

    /// <summary>What its confirmation waits for (as resolved when it was published).</summary>
    public Durability Durability { get; }

    /// <summary>The idempotent-producer id it carried: only a client with this <see cref="BrokerClient.ProducerId"/> can retry it.</summary>
    public ulong ProducerId { get; }

    /// <summary>The producer sequence it carried, which a retry keeps.</summary>
    public ulong ProducerSequence { get; }

    internal int TopicLength { get; }

    internal uint TtlMs { get; }

    internal ReadOnlySpan<byte> EncodedHeaders => _bytes.AsSpan(_keyLength, _headersLength);

    /// <summary>Copies a confirmable publish the server answered with NotReplicated (before it goes back to its pool).</summary>
    internal static UnconfirmedPublish From(PendingPublish p, ulong producerId) => new(p, producerId);
}
