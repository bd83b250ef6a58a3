using Xunit.Abstractions;
using Xunit.Sdk;

[assembly: TestCollectionOrderer("FastBroker.ReplicationTests.Failover.PairsFirstOrderer", "FastBroker.Replication.Tests")]

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// xunit's default order (stable, otherwise arbitrary), with <see cref="PairProcessCollection"/> first: its classes run
/// one after another for about three minutes, the longest chain of the parallel phase, so it starts at once and the
/// in-process classes fill the other thread around it. Started midway (where the default order put it), it ran on
/// alone at the end of the parallel phase for a minute and a half.
/// </summary>
public sealed class PairsFirstOrderer : ITestCollectionOrderer
{
    private readonly DefaultTestCollectionOrderer _default = new();

    public IEnumerable<ITestCollection> OrderTestCollections(IEnumerable<ITestCollection> testCollections) =>
        _default.OrderTestCollections(testCollections).OrderBy(c => c.DisplayName == nameof(PairProcessCollection) ? 0 : 1); // OrderBy is stable
}
