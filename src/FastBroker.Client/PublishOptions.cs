using FastBroker.Protocol;

namespace FastBroker.Client;

/// <summary>Per-message publish settings. Immutable and reusable: one instance may serve any number of publishes.</summary>
public sealed record PublishOptions
{
    /// <summary>No key, no headers, no TTL, the client's durability.</summary>
    public static PublishOptions Default { get; } = new();

    /// <summary>The message key (compaction, partitioned consumers); empty = none. At most 65535 bytes.</summary>
    public ReadOnlyMemory<byte> Key { get; init; }

    /// <summary>Headers; null = none.</summary>
    public PublishHeaders? Headers { get; init; }

    /// <summary>Time to live (whole milliseconds); zero = none. Expired messages are not delivered.</summary>
    public TimeSpan Ttl { get; init; }

    /// <summary>What the confirmation waits for; null = <see cref="BrokerClientOptions.Durability"/>.</summary>
    public Durability? Durability { get; init; }
}
