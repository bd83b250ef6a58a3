using System.CommandLine;
using FastBroker.Bench.Infrastructure;

namespace FastBroker.Cli.Commands;

/// <summary><c>fastbroker bench &lt;scenario&gt;</c>: the load benchmarks, with a human table or JSON lines.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var bench = new Command("bench", "Run a benchmark: a table with progress, or one JSON object per line with --json.");
        bench.Subcommands.Add(Scenario("ring", "Disruptor ring vs a bounded System.Threading.Channels channel, same run.", RunRing));
        bench.Subcommands.Add(Scenario("journal", "Journal appends and zero-copy scans vs raw file writes on the same filesystem, same run.", RunJournal));
        bench.Subcommands.Add(Scenario("broker", "The embedded broker end to end (no sockets): publish, fan-out, work queue, latency at a fixed rate.", RunBroker));
        return bench;
    }

    private static void RunRing(BenchContext ctx) => FastBroker.Bench.Ring.RingBenchmarks.Run(ctx);

    private static void RunJournal(BenchContext ctx) => FastBroker.Bench.Journal.JournalBenchmarks.Run(ctx);

    private static void RunBroker(BenchContext ctx) => FastBroker.Bench.Broker.BrokerBenchmarks.Run(ctx);

    private static Command Scenario(string name, string description, Action<BenchContext> run)
    {
        var json = new Option<bool>("--json") { Description = "One JSON object per result line, no table or progress." };
        var messages = new Option<long?>("--messages") { Description = "Messages per run (default: the scenario's own)." };
        var runs = new Option<int>("--runs") { Description = "Runs per variant; the median is reported.", DefaultValueFactory = _ => 3 };
        var warmup = new Option<double>("--warmup") { Description = "Seconds of CPU-busy warm-up before measuring.", DefaultValueFactory = _ => 20 };
        var filter = new Option<string?>("--filter") { Description = "Only variants whose name contains this text." };
        var dir = new Option<string?>("--dir") { Description = "Directory for file-based benchmarks (default: a temp directory)." };
        var cmd = new Command(name, description) { json, messages, runs, warmup, filter, dir };
        cmd.SetAction(parse =>
        {
            var jsonMode = parse.GetValue(json);
            IBenchReporter reporter = jsonMode ? new JsonLinesReporter(Console.Out) : new ConsoleTableReporter(name);
            var ctx = new BenchContext(reporter, parse.GetValue(messages), parse.GetValue(runs), parse.GetValue(warmup), parse.GetValue(filter), parse.GetValue(dir));
            run(ctx);
            (reporter as ConsoleTableReporter)?.Finish();
            return 0;
        });
        return cmd;
    }
}
