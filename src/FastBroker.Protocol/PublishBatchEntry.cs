using System.Buffers;

namespace FastBroker.Protocol;

/// <summary>One message of a PUBLISH_BATCH.</summary>
public readonly ref struct PublishBatchEntry
{
    /// <summary>Position in the batch (request id = frame request id + index).</summary>
    public int Index { get; internal init; }

    /// <summary>Time to live in milliseconds; 0 = none.</summary>
    public uint TtlMs { get; internal init; }

    /// <summary>UTF-8 topic name (non-empty, valid UTF-8).</summary>
    public ReadOnlySpan<byte> Topic { get; internal init; }

    /// <summary>The key (may be empty).</summary>
    public ReadOnlySequence<byte> Key { get; internal init; }

    /// <summary>The headers.</summary>
    public HeaderBlock Headers { get; internal init; }

    /// <summary>The payload.</summary>
    public ReadOnlySequence<byte> Payload { get; internal init; }

    /// <summary>Key, headers and payload exactly as on the wire.</summary>
    public ReadOnlySequence<byte> MessageBlock { get; internal init; }
}
