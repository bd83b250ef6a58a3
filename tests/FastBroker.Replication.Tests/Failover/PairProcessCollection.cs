namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// The real-process pair tests whose nodes run with a heartbeat timeout of 2 s or more (a lease of 4 s or more) and
/// that assert nothing a neighbour's CPU load could break: every wait is a condition with a deadline of 30 s or more,
/// and the only timed assertions are lower bounds (a node waited at least its <c>--peer-wait-ms</c>), which load can
/// only lengthen. Most of their time is spent waiting out a dead or frozen node's lease or silence, with the CPU idle.
/// They run one at a time, as in <see cref="FailoverCollection"/> (two pairs side by side would measure each other's
/// start-up rather than the failover), but during the parallel phase, beside one in-process class (xunit's default
/// on 2 cores runs two tests at a time), instead of after it, alone. CI already runs them beside the other test
/// projects' lane; the 2 s heartbeat timeouts were chosen for that load. The pair tests that keep the default 500 ms
/// heartbeat timeout, a 300 ms one, a CPU-heavy backlog, or a timed child process stay in
/// <see cref="FailoverCollection"/>.
/// </summary>
[CollectionDefinition(nameof(PairProcessCollection))]
public sealed class PairProcessCollection
{
}
