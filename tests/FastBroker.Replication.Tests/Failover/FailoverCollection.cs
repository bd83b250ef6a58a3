namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// The real-process pair tests run one at a time and after the parallel ones: each starts two or three `dotnet`
/// processes and kills them with SIGKILL, and on a 2-core machine two such tests side by side would measure each
/// other's start-up rather than the failover.
/// </summary>
[CollectionDefinition(nameof(FailoverCollection), DisableParallelization = true)]
public sealed class FailoverCollection
{
}
