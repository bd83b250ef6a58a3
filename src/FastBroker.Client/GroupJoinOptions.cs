namespace FastBroker.Client;

/// <summary>How a work-queue member takes work. Immutable and reusable.</summary>
public sealed record GroupJoinOptions
{
    /// <summary>32 unacknowledged deliveries, the group's visibility timeout and max deliveries.</summary>
    public static GroupJoinOptions Default { get; } = new();

    /// <summary>Most unacknowledged deliveries this member holds (1–65535 in practice).</summary>
    public int Prefetch { get; init; } = 32;

    /// <summary>Redeliver a delivery unacknowledged for this long; null = the group's default.</summary>
    public TimeSpan? VisibilityTimeout { get; init; }

    /// <summary>Dead-letter after this many deliveries; null = the group's default.</summary>
    public int? MaxDeliveries { get; init; }
}
