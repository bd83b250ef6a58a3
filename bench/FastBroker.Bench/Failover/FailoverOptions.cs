using FastBroker.Bench.Pair;

namespace FastBroker.Bench.Failover;

/// <summary>Settings of <c>fastbroker bench failover</c>.</summary>
public sealed record FailoverOptions
{
    /// <summary>The <c>fastbroker</c> executable the witness and the nodes run (<see cref="FastBrokerExecutable.Current"/> in the CLI).</summary>
    public required FastBrokerExecutable Executable { get; init; }

    /// <summary>Primary kills (each one a failover sample).</summary>
    public int Rounds { get; init; } = 5;

    /// <summary>
    /// Publishes per second. 2,000: at most 0.5 ms between a publish and the moment the old primary is gone (the
    /// resolution of the failover figure), and light enough for the two nodes, the witness and the client to share
    /// two cores.
    /// </summary>
    public int Rate { get; init; } = 2_000;

    /// <summary>Shortest time of steady publishing (standby attached and caught up) before a kill.</summary>
    public TimeSpan MinKillDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Longest; the kill moment is uniform between the two.</summary>
    public TimeSpan MaxKillDelay { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// The nodes' heartbeat timeout in ms (their lease TTL is twice it): 500, the
    /// documented pair setting. Longer for a machine too loaded to run a node every half second, where a stalled
    /// primary would be taken for a dead one and the pair would change roles between kills.
    /// </summary>
    public int HeartbeatTimeoutMs { get; init; } = LocalPair.HeartbeatTimeoutMs;

    /// <summary>Seed of the kill moments; null = random.</summary>
    public int? Seed { get; init; }
}
