using System.Buffers;

namespace FastBroker.Protocol;

/// <summary>A parsed, fully validated DELIVER_BATCH (server → client). Valid only during the handler call.</summary>
public readonly ref struct DeliverBatchFrame
{
    /// <summary>The subscription (or group membership) all entries belong to.</summary>
    public uint SubscriptionId { get; internal init; }

    /// <summary>Number of messages (≥ 1).</summary>
    public int Count { get; internal init; }

    /// <summary>The encoded entries.</summary>
    public ReadOnlySequence<byte> Entries { get; internal init; }

    internal Span<byte> Scratch { get; init; }

    /// <summary>Enumerates the messages; an entry's <see cref="DeliverBatchEntry.Topic"/> is valid until the next MoveNext.</summary>
    public DeliverBatchEnumerator GetEnumerator() => new(Entries, Scratch);
}
