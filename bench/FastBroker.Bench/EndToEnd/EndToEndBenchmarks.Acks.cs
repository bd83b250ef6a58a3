using FastBroker.Bench.Infrastructure;
using FastBroker.Bench.Pair;
using FastBroker.Client;

namespace FastBroker.Bench.EndToEnd;

/// <summary>
/// `fastbroker bench e2e --acks local,standby-received,standby-durable`: confirm-latency-10k against a failover pair
/// (witness + two nodes, child processes of this executable), once per ack mode in the same run, so the cost of each
/// standby mode is read against the local mode of the same pair, same machine, same minute.
/// </summary>
public static partial class EndToEndBenchmarks
{
    /// <summary>The ack modes <c>--acks</c> accepts, in the order they run (local first: the baseline).</summary>
    public static IReadOnlyList<string> AckModes { get; } = ["local", "standby-received", "standby-durable"];

    /// <summary>
    /// Starts a pair with <paramref name="executable"/>, waits for a primary with an attached standby, and runs
    /// <c>confirm-latency-10k-&lt;mode&gt;</c> for each of <paramref name="modes"/> against the primary;
    /// <paramref name="nodeArguments"/> go to both nodes' <c>serve</c>.
    /// </summary>
    public static void RunAcks(BenchContext ctx, IReadOnlyList<string> modes, FastBrokerExecutable executable, IReadOnlyList<string>? nodeArguments = null) =>
        RunAcksAsync(ctx, modes, executable, nodeArguments ?? []).GetAwaiter().GetResult();

    /// <summary>The durability a publish asks for in <paramref name="mode"/> (an <see cref="AckModes"/> name).</summary>
    public static FastBroker.Protocol.Durability DurabilityOf(string mode) => mode switch
    {
        "local" => FastBroker.Protocol.Durability.Written,
        "standby-received" => FastBroker.Protocol.Durability.StandbyReceived,
        "standby-durable" => FastBroker.Protocol.Durability.StandbyDurable,
        _ => throw new ArgumentException($"--acks: '{mode}' is not one of {string.Join(", ", AckModes)}", nameof(mode)),
    };

    private static async Task RunAcksAsync(BenchContext ctx, IReadOnlyList<string> modes, FastBrokerExecutable executable, IReadOnlyList<string> nodeArguments)
    {
        foreach (var m in modes)
        {
            _ = DurabilityOf(m);
        }

        var ordered = AckModes.Where(modes.Contains).ToList();
        var n = (int)(ctx.Messages ?? 1_000_000);
        var count = Math.Max(20_000, Math.Min(n / 10, 100_000));
        ctx.WarmUpMachine();
        ctx.Reporter.Info($"failover pair on 127.0.0.1: witness + nodes a and b as child processes of {executable} (same {Environment.ProcessorCount} cores as the load), heartbeat timeout {LocalPair.HeartbeatTimeoutMs} ms{(nodeArguments.Count > 0 ? $", nodes run with {string.Join(' ', nodeArguments)}" : "")}; {PayloadBytes} B payloads, {count:N0} messages per run at 10,000 msg/s; ack modes {string.Join(", ", ordered)}");
        ctx.Reporter.Progress("starting the pair", 0);
        await using var pair = await LocalPair.StartAsync(executable, ctx.WorkDirectory, nodeArguments, CancellationToken.None).ConfigureAwait(false);
        try
        {
            await MeasureAcksAsync(ctx, ordered, count, pair).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            throw await pair.WithDiagnosticsAsync(ex).ConfigureAwait(false);
        }
    }

    private static async Task MeasureAcksAsync(BenchContext ctx, List<string> ordered, int count, LocalPair pair)
    {
        var (primary, standby) = await pair.WaitForAttachedPairAsync(TimeSpan.FromSeconds(60), CancellationToken.None).ConfigureAwait(false);
        ctx.Reporter.Info($"primary '{primary.Name}' at {primary.ClientEndpoint}, standby '{standby.Name}' attached");

        // Interleaved rounds (one run of every mode per round, after a warm-up round) rather than all runs of one mode
        // then the next: this VM's speed drifts over minutes, and the cost of a standby mode is read against the local
        // run of its own round. Reported per mode: the run with the median p50; addedP50Us: the median over rounds of
        // (p50 of the mode − p50 of local in the same round).
        var modes = ordered.Where(m => ctx.Selected($"confirm-latency-10k-{m}")).ToList();
        var runs = modes.ToDictionary(m => m, _ => new List<(LogLinearHistogram H, double Rate)>());
        var rounds = Math.Max(1, ctx.Runs);
        for (var round = -1; round < rounds; round++)
        {
            foreach (var mode in modes)
            {
                var variant = $"confirm-latency-10k-{mode}";
                ctx.Reporter.Progress(round < 0 ? $"{variant} (warm-up)" : $"{variant} round {round + 1}/{rounds}", Math.Max(0, round) / (double)rounds);
                var options = PublishOptions.Default with { Durability = DurabilityOf(mode) };
                var topic = $"bench.{variant}.{Environment.ProcessId}";
                var h = new LogLinearHistogram();
                var rate = await ConfirmLatencyAsync(primary.ClientEndpoint, topic, count, 10_000, options, h).ConfigureAwait(false);
                if (round >= 0)
                {
                    runs[mode].Add((h, rate));
                }
            }
        }

        // The standby must still be attached: otherwise the standby modes above waited on a missing standby (and
        // failed after the ack timeout) rather than measuring replication.
        var status = await LocalPair.StatusAsync(primary, CancellationToken.None).ConfigureAwait(false);
        if (status is not { IsPrimary: true, StandbyAttached: true })
        {
            throw new InvalidOperationException($"the pair changed during the measurement (primary '{primary.Name}' lost its role or its standby)");
        }

        var link = LinkCounters(status.Json);
        foreach (var mode in modes)
        {
            var variant = $"confirm-latency-10k-{mode}";
            var ordinal = runs[mode].OrderBy(r => r.H.ValueAtPercentile(50)).ToList();
            var (mid, rate) = ordinal[ordinal.Count / 2];
            var result = new BenchResult("e2e", variant) { MsgsPerSec = rate, Runs = rounds, Messages = count, Note = $"publish→confirm at 10,000 msg/s, CO-corrected, acks {mode}" }.WithLatency(mid);
            if (mode != "local" && runs.TryGetValue("local", out var local))
            {
                var added = runs[mode].Zip(local, (m, l) => (m.H.ValueAtPercentile(50) - (double)l.H.ValueAtPercentile(50)) / 1000.0).ToArray();
                var addedUs = BenchContext.Median(added);
                var localMid = local.OrderBy(r => r.H.ValueAtPercentile(50)).ToList()[local.Count / 2].H.ValueAtPercentile(50);
                result = result with
                {
                    Baseline = "confirm-latency-10k-local",
                    Ratio = localMid > 0 ? mid.ValueAtPercentile(50) / (double)localMid : null,
                    Extra = [new("addedP50Us", Math.Round(addedUs, 1)), .. link],
                    Note = $"{result.Note}; p50 {addedUs:+0.0;-0.0} µs vs local (median over {rounds} interleaved rounds of the same-round difference: {string.Join(", ", added.Select(a => a.ToString("+0;-0", System.Globalization.CultureInfo.InvariantCulture)))})",
                };
            }

            ctx.Reporter.Result(result);
        }

        // The standby must still be attached: otherwise the standby modes above waited on a missing standby (and
        // failed after the ack timeout) rather than measuring replication.

    }

    /// <summary>The primary's standby-link counters from its <c>/status</c> (who shipped the records and read the acks), over every mode's runs.</summary>
    private static List<KeyValuePair<string, double>> LinkCounters(string json)
    {
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        var standby = doc.RootElement.GetProperty("standby");
        string[] names = ["acksReceived", "journalerAcks", "journalerShips"];
        return [.. names.Where(n => standby.TryGetProperty(n, out var v) && v.ValueKind == System.Text.Json.JsonValueKind.Number).Select(n => new KeyValuePair<string, double>(n, standby.GetProperty(n).GetInt64()))];
    }
}
