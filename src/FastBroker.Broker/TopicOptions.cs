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

    /// <summary>
    /// Largest accepted message (key + headers + payload), in bytes: at most half the journal segment size in use
    /// (<see cref="SegmentBytes"/>, capped at 1 GiB), so at most 512 MiB. A journal record is a 32-byte header and the
    /// message, and must fit in one segment after the segment's 128-byte header, with room left for the headers the
    /// broker adds (<c>fb-producer</c>, a dead letter's <c>fb-dlq-*</c>).
    /// </summary>
    public int MaxMessageBytes { get; init; } = 1024 * 1024;

    /// <summary>
    /// Journal segment size in bytes (persistent topics): at least 64 KiB, a segment size the journal opens with
    /// (<see cref="JournalOptions.IsValidSegmentSize"/>: a multiple of 4096; a value past 1 GiB gives 1 GiB segments),
    /// and that segment size at least twice <see cref="MaxMessageBytes"/>.
    /// </summary>
    public long SegmentBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>
    /// Delete whole sealed segments older than this; null keeps them. A whole number of milliseconds from 1 ms (what
    /// <c>topic.meta</c> keeps), up to 922,337,203,685,477 ms.
    /// </summary>
    public TimeSpan? RetentionAge { get; init; }

    /// <summary>Delete the oldest sealed segments while the topic is larger than this; null = no size limit.</summary>
    public long? RetentionBytes { get; init; }

    /// <summary>
    /// Messages a transient topic keeps for subscribers that fall behind: a power of two from 1 to
    /// <see cref="MaxTransientCapacity"/>.
    /// </summary>
    public int TransientCapacity { get; init; } = 1 << 16;

    /// <summary>
    /// The largest <see cref="TransientCapacity"/>: 2^24 slots. A transient topic allocates every slot when it is
    /// created: a 64-byte slot object, its array reference (8 bytes) and a 24-byte-headed buffer of its own of
    /// <c>min(MaxMessageBytes, BrokerOptions.InputEntryBytes)</c> bytes, so about 600 bytes a slot with the default
    /// 512-byte entries: 38 MiB at the default 2^16, 9.5 GiB at 2^24, which is as much as a single-node broker gives one
    /// topic; 2^30 slots would be 600 GiB. A larger message takes a pooled array only while the ring holds it
    /// (docs/broker.md, "Transient topics' memory"), so the ring never keeps more than its own buffers and the messages
    /// it holds.
    /// </summary>
    public const int MaxTransientCapacity = 1 << 24;

    /// <summary>
    /// The largest <see cref="MaxMessageBytes"/> a persistent topic takes with journal segments of
    /// <paramref name="segmentSize"/> bytes (the size in use: <see cref="SegmentBytes"/> capped at 1 GiB): half of it.
    /// A segment of <c>S</c> bytes holds records of at most <see cref="JournalOptions.MaxRecordContentBytes"/>(S) =
    /// S − 160 bytes of key, headers and payload; half of S leaves S/2 − 160 bytes (at least 32,608) for what the broker
    /// adds to a message at the limit (<c>fb-producer</c>, 38 bytes; a dead letter's <c>fb-dlq-*</c>, at most about
    /// 3.7 KB).
    /// </summary>
    public static int MaxMessageBytesFor(int segmentSize) => segmentSize / 2;

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

        if (TransientCapacity <= 0 || TransientCapacity > MaxTransientCapacity || (TransientCapacity & (TransientCapacity - 1)) != 0)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, string.Create(CultureInfo.InvariantCulture, $"TransientCapacity ({TransientCapacity}) must be a power of two from 1 to {MaxTransientCapacity} (2^24): a transient topic allocates every slot when it is created, about 600 bytes each with 512-byte entries (9.5 GiB at 2^24)"));
        }

        var segmentSize = Engine.TopicRegistry.JournalOptionsFor(this).SegmentSize;
        if (Persistent && !JournalOptions.IsValidSegmentSize(segmentSize))
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, string.Create(CultureInfo.InvariantCulture, $"SegmentBytes ({SegmentBytes}) is not a segment size the journal opens with: {JournalOptions.SegmentSizeRule} (a value past 1 GiB gives 1 GiB segments)"));
        }

        // SegmentBytes past 1 GiB passes the check above but the journal's segments are 1 GiB: the message must fit those.
        if (Persistent && MaxMessageBytes > MaxMessageBytesFor(segmentSize))
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, string.Create(CultureInfo.InvariantCulture, $"MaxMessageBytes ({MaxMessageBytes}) must be at most half the journal segment size in use ({segmentSize} bytes, SegmentBytes capped at 1 GiB): a record (a 32-byte header and the message, with the headers the broker adds) must fit in one segment after its 128-byte header"));
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
