using System.Globalization;
using FastBroker.Journal;

namespace FastBroker;

/// <summary>Settings of one topic. Immutable; <see cref="Default"/> is what auto-created topics get unless the broker says otherwise.</summary>
public sealed record TopicOptions
{
    /// <summary>Persistent (journaled), written-confirmations, 1 MiB messages, 64 MiB segments, kept forever.</summary>
    public static TopicOptions Default { get; } = new();

    /// <summary>Persistent topics are journaled and read zero-copy from the journal; transient ones live only in memory.</summary>
    public bool Persistent { get; init; } = true;

    /// <summary>What a publish confirmation waits for (persistent topics; transient topics confirm on acceptance).</summary>
    public Durability Durability { get; init; } = Durability.Written;

    /// <summary>
    /// The ack mode a publish that asks for <see cref="PublishDurability.TopicDefault"/> gets when the broker runs as
    /// the primary of a failover pair (persistent topics; a single broker confirms <see cref="AckMode.Local"/>).
    /// </summary>
    public AckMode Acks { get; init; } = AckMode.Local;

    /// <summary>Largest accepted message (key + headers + payload), in bytes.</summary>
    public int MaxMessageBytes { get; init; } = 1024 * 1024;

    /// <summary>
    /// Journal segment size in bytes (persistent topics): at least 64 KiB and twice <see cref="MaxMessageBytes"/>, and a
    /// segment size the journal opens with (<see cref="JournalOptions.IsValidSegmentSize"/>: a multiple of 4096; a value
    /// past 1 GiB gives 1 GiB segments).
    /// </summary>
    public long SegmentBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>
    /// Delete whole sealed segments older than this; null keeps them. A whole number of milliseconds from 1 ms (what
    /// <c>topic.meta</c> keeps), up to 922,337,203,685,477 ms.
    /// </summary>
    public TimeSpan? RetentionAge { get; init; }

    /// <summary>Delete the oldest sealed segments while the topic is larger than this; null = no size limit.</summary>
    public long? RetentionBytes { get; init; }

    /// <summary>Messages a transient topic keeps for subscribers that fall behind (a power of two).</summary>
    public int TransientCapacity { get; init; } = 1 << 16;

    /// <summary>Throws <see cref="BrokerException"/> (<see cref="BrokerErrorCode.InvalidArgument"/>) when a value is out of range.</summary>
    public void Validate()
    {
        if (MaxMessageBytes <= 0)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, "MaxMessageBytes must be positive");
        }

        if (SegmentBytes < 64 * 1024 || SegmentBytes < 2L * MaxMessageBytes)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, "SegmentBytes must be at least 64 KiB and twice MaxMessageBytes");
        }

        if (TransientCapacity <= 0 || (TransientCapacity & (TransientCapacity - 1)) != 0)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, "TransientCapacity must be a power of two");
        }

        if (Persistent && !JournalOptions.IsValidSegmentSize(Engine.TopicRegistry.JournalOptionsFor(this).SegmentSize))
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, string.Create(CultureInfo.InvariantCulture, $"SegmentBytes ({SegmentBytes}) is not a segment size the journal opens with: {JournalOptions.SegmentSizeRule} (a value past 1 GiB gives 1 GiB segments)"));
        }

        if (RetentionAge is { } age && age <= TimeSpan.Zero)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, "RetentionAge must be positive");
        }

        // topic.meta keeps the age in whole milliseconds: anything else would reopen as another age (0 ms: not at all).
        if (RetentionAge is { } wholeMs && wholeMs.Ticks % TimeSpan.TicksPerMillisecond != 0)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, string.Create(CultureInfo.InvariantCulture, $"RetentionAge ({wholeMs.TotalMilliseconds} ms) must be a whole number of milliseconds, at least 1 ms (topic.meta keeps it in ms)"));
        }

        if (RetentionBytes is { } bytes && bytes <= 0)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, "RetentionBytes must be positive");
        }
    }
}
