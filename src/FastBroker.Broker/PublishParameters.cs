namespace FastBroker;

/// <summary>Per-message settings of a <see cref="PublishClaim"/> publish.</summary>
/// <param name="TtlMs">Time to live in milliseconds; 0 = none. Expired messages are not delivered.</param>
/// <param name="Durability">What the confirmation waits for.</param>
/// <param name="ProducerId">Idempotent producer id; 0 = not idempotent.</param>
/// <param name="ProducerSequence">The producer's sequence number of this message, 0 to 2^64 − 2 (ignored when <paramref name="ProducerId"/> is 0; <see cref="ulong.MaxValue"/> fails the message with <see cref="BrokerErrorCode.InvalidArgument"/>).</param>
/// <param name="ProducerEpoch">
/// The epoch <see cref="Broker.InitProducer"/> gave this instance of the producer; 0 = none (not fenced, fences nothing).
/// A publish with an epoch below the producer's newest is refused with <see cref="BrokerErrorCode.ProducerFenced"/>; one
/// with an epoch the broker cannot have given (above the newest of the id and more than a day ahead of its clock, the
/// rule <see cref="Broker.InitProducer"/> applies to a resume) with <see cref="BrokerErrorCode.InvalidArgument"/>.
/// </param>
public readonly record struct PublishParameters(uint TtlMs = 0, PublishDurability Durability = PublishDurability.TopicDefault, ulong ProducerId = 0, ulong ProducerSequence = 0, ulong ProducerEpoch = 0);
