using System.Buffers;

namespace FastBroker.Protocol;

/// <summary>
/// A parsed, fully validated PUBLISH_BATCH. Message <c>i</c> has request id <c>header.RequestId + i</c> and, for
/// an idempotent producer, sequence <see cref="FirstProducerSequence"/> + i. Valid only during the handler call.
/// </summary>
public readonly ref struct PublishBatchFrame
{
    /// <summary>Idempotent producer id; 0 = not idempotent.</summary>
    public ulong ProducerId { get; internal init; }

    /// <summary>Producer sequence of the first message.</summary>
    public ulong FirstProducerSequence { get; internal init; }

    /// <summary>What the confirmations wait for.</summary>
    public Durability Durability { get; internal init; }

    /// <summary>True when the header flag NO_CONFIRM is set (fire and forget).</summary>
    public bool NoConfirm { get; internal init; }

    /// <summary>Number of messages (≥ 1).</summary>
    public int Count { get; internal init; }

    /// <summary>The encoded entries.</summary>
    public ReadOnlySequence<byte> Entries { get; internal init; }

    internal Span<byte> Scratch { get; init; }

    /// <summary>Enumerates the messages; an entry's <see cref="PublishBatchEntry.Topic"/> is valid until the next MoveNext.</summary>
    public PublishBatchEnumerator GetEnumerator() => new(Entries, Scratch);
}
