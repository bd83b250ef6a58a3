namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// The real-process tests run one at a time and after the parallel ones: a pair test starts two or three `dotnet`
/// processes and kills them with SIGKILL, and on a 2-core machine two such tests side by side would measure each
/// other's start-up rather than the failover. Also here: the in-process tests whose product timers or counts a
/// neighbour's CPU load would change (<see cref="ReplicationAllocationTests"/>, <see cref="IdleSenderTests"/>,
/// <see cref="AckPollLinkChurnTests"/>'s per-round deadline). The other in-process tests (nodes, stand-ins and
/// witnesses in the test process, on ports of their own) run in parallel, as each class does by default: they
/// share no static state, and the product timeouts they rely on (heartbeat timeouts, leases) are seconds long.
/// </summary>
[CollectionDefinition(nameof(FailoverCollection), DisableParallelization = true)]
public sealed class FailoverCollection
{
}
