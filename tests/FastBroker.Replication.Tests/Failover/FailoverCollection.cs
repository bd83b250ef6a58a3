namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// The real-process pair and crash tests run one at a time and after the parallel ones: a pair test starts two or
/// three `dotnet` processes and kills them with SIGKILL, and on a 2-core machine two such tests side by side would
/// measure each other's start-up rather than the failover. (The pair tests whose nodes run with heartbeat timeouts of
/// 2 s or more and that assert nothing load could break are in <see cref="PairProcessCollection"/> instead: one at a
/// time too, but during the parallel phase.) Also here: the in-process tests whose product timers or
/// counts a neighbour's CPU load would change (<see cref="ReplicationAllocationTests"/>, <see cref="IdleSenderTests"/>,
/// <see cref="AckPollLinkChurnTests"/>'s per-round deadline); those whose hooks block a thread of the node until the
/// test lets it go (<see cref="StateFileCreationTests"/> holds a thread-pool thread up to 30 s: beside another pair on a
/// busy 2-core machine the pool, which adds threads slowly when the CPU is saturated, stalled both tests for the whole
/// 30 s); and the command tests whose child process is timed
/// (signals, a durable sub's commit interval, producer expiry). The other tests run in parallel, as each class does by
/// default: in-process nodes, stand-ins and witnesses on ports of their own, and commands run to their exit (usage
/// errors, journal tools, one <c>serve</c> that a test asks and stops) with deadlines of 30 s or more. They share no
/// static state, and the product timeouts they rely on (heartbeat timeouts, leases) are seconds long.
/// </summary>
[CollectionDefinition(nameof(FailoverCollection), DisableParallelization = true)]
public sealed class FailoverCollection
{
}
