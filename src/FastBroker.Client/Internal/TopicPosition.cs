namespace FastBroker.Client.Internal;

/// <summary>What a subscription has seen of one topic (-1 = nothing). Guarded by the subscription's gate.</summary>
internal sealed class TopicPosition(string name)
{
    public string Name { get; } = name;

    /// <summary>Highest offset written to the subscription's buffer: a redelivery at or below it is dropped.</summary>
    public long LastReceived { get; set; } = -1;

    /// <summary>Highest offset the application took.</summary>
    public long LastConsumed { get; set; } = -1;

    /// <summary>Highest position committed (next offset), -1 = none by this client.</summary>
    public long Committed { get; set; } = -1;

    /// <summary>The connection of its last delivery: the first one on a new connection is checked for renumbering.</summary>
    public long Generation { get; set; }
}
