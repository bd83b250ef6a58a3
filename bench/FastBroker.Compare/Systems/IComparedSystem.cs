using FastBroker.Bench.Infrastructure;

namespace FastBroker.Compare.Systems;

/// <summary>
/// One system under comparison, its server already started: the three workloads, each driven with the client a .NET
/// user of that system would use, each checking that what it counted really arrived (throws otherwise).
/// </summary>
internal interface IComparedSystem : IAsyncDisposable
{
    /// <summary>"fastbroker", "fastbroker-fsynced", "redis", "nats" or "rabbitmq".</summary>
    string Name { get; }

    /// <summary>The variant name for <paramref name="scenario"/>: <c>&lt;scenario&gt;-&lt;system&gt;[-&lt;mode&gt;]</c>.</summary>
    string Variant(string scenario);

    /// <summary>Whether this system takes part in <paramref name="scenario"/> (all three unless it says otherwise).</summary>
    bool Runs(string scenario) => true;

    /// <summary>What a confirmation means here, for the result line's note.</summary>
    string Durability(string scenario);

    /// <summary><c>publish</c>: <paramref name="n"/> messages on one connection, up to 4,096 unconfirmed; msgs/s.</summary>
    Task<double> PublishAsync(int n, CancellationToken cancellationToken);

    /// <summary><c>fanout-3</c>: one publisher, 3 subscriber connections; deliveries/s until each has all <paramref name="n"/>.</summary>
    Task<double> FanoutAsync(int n, CancellationToken cancellationToken);

    /// <summary><c>confirm-latency-10k</c>: <paramref name="count"/> messages at <paramref name="rate"/>/s, publish→confirm from the scheduled send time into <paramref name="histogram"/>; returns the achieved msgs/s.</summary>
    Task<double> ConfirmLatencyAsync(int count, int rate, LogLinearHistogram histogram, CancellationToken cancellationToken);
}
