using System.Globalization;
using FastBroker.Bench.Infrastructure;
using FastBroker.Compare.Servers;
using FastBroker.Compare.Systems;

namespace FastBroker.Compare;

/// <summary>
/// Runs the comparison: starts each selected system's server, then per scenario one unreported warm-up round and
/// <see cref="BenchContext.Runs"/> measured rounds, each round running every system once in an order that rotates
/// per round (this VM's speed drifts over minutes: interleaving keeps the ratios honest). Reports per system the
/// median over rounds (latency: the run with the median p50) with FastBroker's ratios against the competitors.
/// </summary>
internal static class CompareBenchmark
{
    /// <summary>The systems in their canonical order.</summary>
    public static readonly IReadOnlyList<string> AllSystems = ["fastbroker", "fastbroker-fsynced", "redis", "nats", "rabbitmq"];

    /// <summary>The scenarios, in the order they run.</summary>
    public static readonly IReadOnlyList<string> Scenarios = ["publish", "fanout-3", "confirm-latency-10k"];

    /// <summary>Messages per latency run at 10k/s for <paramref name="messages"/> per throughput run (as bench e2e: n/10 within [20k, 100k]), unless given.</summary>
    public static int LatencyCount(long messages) => (int)Math.Max(20_000, Math.Min(messages / 10, 100_000));

    /// <summary>
    /// The competitor a FastBroker line's ratio is read against: for <c>fastbroker</c> the one the issue quotes per
    /// scenario, for <c>fastbroker-fsynced</c> RabbitMQ, whose confirms of persistent messages also wait for an fsync.
    /// </summary>
    public static string BaselineSystem(string scenario, string fastBroker = "fastbroker") => fastBroker == "fastbroker-fsynced"
        ? "rabbitmq"
        : scenario switch
        {
            "fanout-3" => "nats",
            _ => "redis",
        };

    /// <summary>FastBroker's own lines (any durability), as opposed to the competitors'.</summary>
    public static bool IsFastBroker(string system) => system.StartsWith("fastbroker", StringComparison.Ordinal);

    /// <summary>Starts the servers of <paramref name="systems"/> (skipping, with a line, those not installed), runs, and stops them.</summary>
    public static async Task RunAsync(BenchContext ctx, IReadOnlyList<string> systems, int? latencyCount = null, CancellationToken cancellationToken = default)
    {
        var n = (int)(ctx.Messages ?? 1_000_000);
        var latency = latencyCount ?? LatencyCount(n);
        var started = new List<IComparedSystem>();
        try
        {
            foreach (var name in AllSystems.Where(systems.Contains))
            {
                if (!IsFastBroker(name) && Competitors.BinaryOf(name) is (var binary, null))
                {
                    ctx.Reporter.Info($"{name} skipped: {Competitors.NotInstalled(binary)}");
                    continue;
                }

                ctx.Reporter.Progress($"starting {name}", 0);
                started.Add(await StartAsync(name, ctx.WorkDirectory, cancellationToken).ConfigureAwait(false));
            }

            ctx.Reporter.Info($"{string.Join(", ", started.Select(s => s.Name))} as child processes on 127.0.0.1 (same {Environment.ProcessorCount} cores as the load), {Workloads.PayloadBytes} B payloads, {n:N0} messages per throughput run, {latency:N0} per latency run at 10,000 msg/s; rounds interleaved, order rotating");
            ctx.WarmUpMachine();
            await RunScenariosAsync(ctx, started, n, latency, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            foreach (var s in started)
            {
                await s.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>Starts one system's server with its launcher.</summary>
    public static async Task<IComparedSystem> StartAsync(string name, string? workDirectory, CancellationToken cancellationToken = default) => name switch
    {
        "fastbroker" => await FastBrokerSystem.StartAsync(workDirectory).ConfigureAwait(false),
        "fastbroker-fsynced" => await FastBrokerSystem.StartAsync(workDirectory, fsynced: true).ConfigureAwait(false),
        "redis" => await RedisSystem.StartAsync(workDirectory, cancellationToken).ConfigureAwait(false),
        "nats" => await NatsSystem.StartAsync(workDirectory, cancellationToken).ConfigureAwait(false),
        "rabbitmq" => await RabbitMqSystem.StartAsync(workDirectory, cancellationToken).ConfigureAwait(false),
        _ => throw new ArgumentException($"unknown system '{name}': expected {string.Join(", ", AllSystems)}", nameof(name)),
    };

    /// <summary>Every selected scenario over <paramref name="systems"/> (servers already started).</summary>
    public static async Task RunScenariosAsync(BenchContext ctx, IReadOnlyList<IComparedSystem> systems, int n, int latencyCount, CancellationToken cancellationToken = default)
    {
        foreach (var scenario in Scenarios)
        {
            var selected = systems.Where(s => s.Runs(scenario) && ctx.Selected(s.Variant(scenario))).ToList();
            if (selected.Count == 0)
            {
                continue;
            }

            var results = await RoundsAsync(ctx, scenario, selected, n, latencyCount, cancellationToken).ConfigureAwait(false);
            foreach (var r in WithRatios(scenario, selected, results))
            {
                ctx.Reporter.Result(r);
            }
        }
    }

    private static async Task<List<BenchResult>> RoundsAsync(BenchContext ctx, string scenario, List<IComparedSystem> systems, int n, int latencyCount, CancellationToken cancellationToken)
    {
        var isLatency = scenario == "confirm-latency-10k";
        var runs = systems.ToDictionary(s => s, _ => new List<(double Rate, LogLinearHistogram? H)>());
        var rounds = Math.Max(1, ctx.Runs);
        for (var round = -1; round < rounds; round++)
        {
            var shift = ((round % systems.Count) + systems.Count) % systems.Count;
            foreach (var system in systems.Skip(shift).Concat(systems.Take(shift)))
            {
                var variant = system.Variant(scenario);
                ctx.Reporter.Progress(round < 0 ? $"{variant} (warm-up)" : $"{variant} round {round + 1}/{rounds}", Math.Max(0, round) / (double)rounds);
                double rate;
                LogLinearHistogram? h = null;
                try
                {
                    if (isLatency)
                    {
                        h = new LogLinearHistogram();
                        rate = await system.ConfirmLatencyAsync(latencyCount, 10_000, h, cancellationToken).ConfigureAwait(false);
                        Workloads.Check($"{variant}: latency samples", latencyCount, h.Count);
                    }
                    else
                    {
                        rate = scenario == "publish"
                            ? await system.PublishAsync(n, cancellationToken).ConfigureAwait(false)
                            : await system.FanoutAsync(n, cancellationToken).ConfigureAwait(false);
                    }
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    throw new InvalidOperationException($"{variant} failed in {(round < 0 ? "the warm-up round" : $"round {round + 1}")}: {e.Message}", e);
                }

                if (!(rate > 0))
                {
                    throw new InvalidOperationException($"{variant}: no throughput measured ({rate})");
                }

                if (round >= 0)
                {
                    runs[system].Add((rate, h));
                }
            }
        }

        var results = new List<BenchResult>();
        foreach (var system in systems)
        {
            var list = runs[system];
            var variant = system.Variant(scenario);
            var note = system.Durability(scenario);
            if (isLatency)
            {
                var (rate, mid) = list.OrderBy(r => r.H!.ValueAtPercentile(50)).ElementAt(list.Count / 2);
                results.Add(new BenchResult("compare", variant) { MsgsPerSec = rate, Runs = rounds, Messages = latencyCount, Note = $"publish→confirm at 10,000 msg/s, CO-corrected; {note}" }.WithLatency(mid!));
            }
            else
            {
                var median = BenchContext.Median([.. list.Select(r => r.Rate)]);
                var what = scenario == "publish" ? "one connection, pipelined (4,096 unconfirmed), every message confirmed" : "deliveries/s over 3 subscriber connections until each has every message";
                results.Add(new BenchResult("compare", variant) { MsgsPerSec = median, BytesPerSec = median * Workloads.PayloadBytes, Runs = rounds, Messages = n, Note = $"{what}; {note}" });
            }
        }

        return results;
    }

    /// <summary>
    /// Each FastBroker line (any durability) gets <c>baseline</c> = its reference competitor
    /// (<see cref="BaselineSystem"/>) and <c>ratio</c> = FastBroker ÷ it (latency: baseline p50 ÷ FastBroker p50, so
    /// &gt; 1 means FastBroker is better either way), plus <c>vs&lt;System&gt;</c> extras with the same ratio against every
    /// other competitor measured in the run. Competitors' lines are left as they are.
    /// </summary>
    internal static IEnumerable<BenchResult> WithRatios(string scenario, IReadOnlyList<IComparedSystem> systems, List<BenchResult> results)
    {
        var isLatency = scenario == "confirm-latency-10k";
        var updated = results.ToList();
        for (var fb = 0; fb < systems.Count; fb++)
        {
            if (!IsFastBroker(systems[fb].Name))
            {
                continue;
            }

            var own = results[fb];
            double? RatioTo(BenchResult other) => isLatency
                ? own.P50Ns is > 0 && other.P50Ns is { } op ? op / (double)own.P50Ns!.Value : null
                : own.MsgsPerSec is { } m && other.MsgsPerSec is > 0 ? m / other.MsgsPerSec!.Value : null;

            var extras = new List<KeyValuePair<string, double>>();
            string? baseline = null;
            double? ratio = null;
            var baselineName = BaselineSystem(scenario, systems[fb].Name);
            for (var i = 0; i < systems.Count; i++)
            {
                if (IsFastBroker(systems[i].Name) || RatioTo(results[i]) is not { } r)
                {
                    continue;
                }

                if (systems[i].Name == baselineName)
                {
                    baseline = results[i].Variant;
                    ratio = r;
                }
                else
                {
                    extras.Add(new("vs" + char.ToUpperInvariant(systems[i].Name[0]) + systems[i].Name[1..], Math.Round(r, 3)));
                }
            }

            var explain = isLatency ? "; ratio = baseline p50 ÷ FastBroker p50 (> 1: FastBroker is faster)" : "; ratio = FastBroker ÷ baseline (> 1: FastBroker is faster)";
            updated[fb] = own with
            {
                Baseline = baseline,
                Ratio = ratio,
                Extra = extras.Count > 0 ? extras : null,
                Note = own.Note + (baseline is not null || extras.Count > 0 ? explain : ""),
            };
        }

        return updated;
    }

    /// <summary>Parses <c>--systems</c>: comma-separated names, each one of <see cref="AllSystems"/>.</summary>
    public static IReadOnlyList<string> ParseSystems(IEnumerable<string> values)
    {
        var names = values.SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).Select(v => v.ToLower(CultureInfo.InvariantCulture)).Distinct().ToList();
        foreach (var name in names.Where(n => !AllSystems.Contains(n)))
        {
            throw new ArgumentException($"--systems: '{name}' is not one of {string.Join(", ", AllSystems)}");
        }

        return names.Count == 0 ? AllSystems : names;
    }
}
