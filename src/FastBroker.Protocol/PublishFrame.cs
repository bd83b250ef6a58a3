using System.Buffers;

namespace FastBroker.Protocol;

/// <summary>A parsed PUBLISH (client → server). Spans and slices are valid only during the handler call.</summary>
public readonly ref struct PublishFrame
{
    /// <summary>Idempotent producer id; 0 = not idempotent.</summary>
    public ulong ProducerId { get; internal init; }

    /// <summary>Per-producer sequence (meaningful when <see cref="ProducerId"/> is not 0).</summary>
    public ulong ProducerSequence { get; internal init; }

    /// <summary>Time to live in milliseconds; 0 = none.</summary>
    public uint TtlMs { get; internal init; }

    /// <summary>What the confirmation waits for.</summary>
    public Durability Durability { get; internal init; }

    /// <summary>True when the header flag NO_CONFIRM is set (fire and forget).</summary>
    public bool NoConfirm { get; internal init; }

    /// <summary>UTF-8 topic name (non-empty, valid UTF-8; the naming rules are the broker's to check).</summary>
    public ReadOnlySpan<byte> Topic { get; internal init; }

    /// <summary>The key (may be empty).</summary>
    public ReadOnlySequence<byte> Key { get; internal init; }

    /// <summary>The headers.</summary>
    public HeaderBlock Headers { get; internal init; }

    /// <summary>The payload.</summary>
    public ReadOnlySequence<byte> Payload { get; internal init; }

    /// <summary>Key, headers and payload with their length prefixes, exactly as on the wire: store it verbatim, send it back in DELIVER.</summary>
    public ReadOnlySequence<byte> MessageBlock { get; internal init; }
}
