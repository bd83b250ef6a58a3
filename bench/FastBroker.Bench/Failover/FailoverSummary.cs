using FastBroker.Bench.Infrastructure;

namespace FastBroker.Bench.Failover;

/// <summary>What <c>fastbroker bench failover</c> measured; <see cref="Result"/> is the line it reported.</summary>
/// <param name="FailoverMs">Per round: kill → first confirmation by the new primary, ms.</param>
/// <param name="PromotionMs">Per round: kill → the standby's <c>/status</c> says primary (polled every 10 ms), ms.</param>
/// <param name="Published">Publishes issued.</param>
/// <param name="Confirmed">Publishes confirmed.</param>
/// <param name="Failed">Publishes whose confirmation failed.</param>
/// <param name="Lost">Confirmed publishes missing from the topic at the end.</param>
/// <param name="Duplicated">Publishes stored more than once (confirmed or not).</param>
/// <param name="Result">The reported line.</param>
/// <param name="Diagnostics">When something was lost or duplicated: the first such sequence numbers and both nodes' status and last log lines; else null.</param>
public sealed record FailoverSummary(
    IReadOnlyList<double> FailoverMs,
    IReadOnlyList<double> PromotionMs,
    long Published,
    long Confirmed,
    long Failed,
    long Lost,
    long Duplicated,
    BenchResult Result,
    string? Diagnostics = null);
