namespace FastBroker;

/// <summary>How a work-queue group hands out messages. The group's settings come from whoever creates it first.</summary>
public sealed record GroupOptions
{
    /// <summary>Prefetch 64, visibility 30 s, 5 deliveries, dead letters to <c>&lt;topic&gt;.dlq</c>, from the earliest message.</summary>
    public static GroupOptions Default { get; } = new();

    /// <summary>
    /// Unacked messages a member may hold at once (its credit). Any value up to <see cref="int.MaxValue"/> is valid;
    /// above the group's read-ahead window (32,768 outstanding messages, shared by its members) it makes no difference.
    /// </summary>
    public int Prefetch { get; init; } = 64;

    /// <summary>
    /// How long a delivery may stay unacked, from when its member got it (<c>WorkQueueMember.Fetch</c>; over TCP,
    /// from its write to the connection), before it is redelivered to another member.
    /// </summary>
    public TimeSpan VisibilityTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>After this many failed deliveries a message goes to the dead-letter topic.</summary>
    public int MaxDeliveries { get; init; } = 5;

    /// <summary>The dead-letter topic; null = <c>&lt;topic&gt;.dlq</c>.</summary>
    public string? DeadLetterTopic { get; init; }

    /// <summary>Priority levels (1 = none). A message's level is its <c>fb-priority</c> header (one byte, 0 = lowest).</summary>
    public int PriorityLevels { get; init; } = 1;

    /// <summary>
    /// Where a new group (no state file) starts in the topic. An existing group resumes from its persisted state; one whose
    /// state file exists but holds no state (lost to a power loss) starts at the oldest message kept, whatever this says.
    /// </summary>
    public StartPosition Start { get; init; } = StartPosition.Earliest;
}
