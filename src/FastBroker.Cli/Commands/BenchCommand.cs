using System.CommandLine;
using FastBroker.Bench.EndToEnd;
using FastBroker.Bench.Failover;
using FastBroker.Bench.Infrastructure;
using FastBroker.Bench.Pair;

namespace FastBroker.Cli.Commands;

/// <summary><c>fastbroker bench &lt;scenario&gt;</c>: the load benchmarks, with a human table or JSON lines.</summary>
internal static class BenchCommand
{
    /// <summary>The most <c>--warmup</c> accepts: an hour (more is a unit mistaken, such as milliseconds).</summary>
    private const double MaxWarmupSeconds = 3600;

    public static Command Create()
    {
        // Shared by every scenario: checked once here.
        OptionRules.AtLeast(s_messages, 1L);
        OptionRules.AtLeast(s_runs, 1);
        OptionRules.Check(s_warmup, static (result, value) =>
        {
            if (value is < 0 or > MaxWarmupSeconds)
            {
                result.AddError($"--warmup {value}: expected 0 to {MaxWarmupSeconds} seconds (0: no warm-up)");
            }
        });
        var bench = new Command("bench", "Run a benchmark: a table with progress, or one JSON object per line with --json.");
        bench.Subcommands.Add(Scenario("ring", "Disruptor ring vs a bounded System.Threading.Channels channel, same run.", RunRing));
        bench.Subcommands.Add(Scenario("journal", "Journal appends and zero-copy scans vs raw file writes on the same filesystem, same run.", RunJournal));
        bench.Subcommands.Add(Scenario("broker", "The embedded broker end to end (no sockets): publish, fan-out, work queue, latency at a fixed rate.", RunBroker));
        var e2e = Scenario("e2e", "The TCP server driven by the .NET client over loopback: publish, publish-1sub, fanout-3, workqueue-3, request-reply, confirm-latency-10k.", null);
        var connect = new Option<string?>("--connect") { Description = "Drive a running server at host:port instead of starting one." };
        var server = new Option<string>("--server") { Description = "The server it starts: child = `fastbroker serve` as a child process (as users run it), in-process = a server in the bench's own process.", DefaultValueFactory = _ => "child" };
        server.AcceptOnlyFromAmong("child", "in-process");
        var acks = new Option<string[]>("--acks") { Description = "Instead: start a failover pair (witness + 2 nodes, child processes) and run confirm-latency-10k once per ack mode: local, standby-received, standby-durable (comma-separated or repeated).", AllowMultipleArgumentsPerToken = false };
        OptionRules.Check(acks, static (result, values) =>
        {
            foreach (var mode in ParseAckModes(values).Where(m => !EndToEndBenchmarks.AckModes.Contains(m)))
            {
                result.AddError($"--acks: '{mode}' is not one of {string.Join(", ", EndToEndBenchmarks.AckModes)}");
            }
        });
        var ackPoll = new Option<int?>("--ack-poll-us") { Description = "With --acks: passed to both nodes' `serve --ack-poll-us` (how long the primary's journaler polls for the standby's ACK; default: the node's own)." };
        OptionRules.Check(ackPoll, static (result, value) =>
        {
            if (value is < 0 or > 1_000_000)
            {
                result.AddError($"--ack-poll-us {value}: expected 0 to 1000000 (a second at most, as serve --ack-poll-us)");
            }
        });
        e2e.Validators.Add(static result =>
        {
            // The e2e scenarios count their messages in an int.
            if (OptionRules.TryGetValue(result, s_messages, out var messages) && messages > int.MaxValue)
            {
                result.AddError($"--messages {messages}: expected at most {int.MaxValue} for e2e");
            }
        });
        e2e.Options.Add(connect);
        e2e.Options.Add(ackPoll);
        e2e.Options.Add(server);
        e2e.Options.Add(acks);
        e2e.SetAction(parse => RunScenario(parse, "e2e", ctx =>
        {
            var modes = ParseAckModes(parse.GetValue(acks));
            if (modes.Count > 0)
            {
                string[] nodeArguments = parse.GetValue(ackPoll) is { } us ? ["--ack-poll-us", us.ToString(System.Globalization.CultureInfo.InvariantCulture)] : [];
                EndToEndBenchmarks.RunAcks(ctx, modes, FastBrokerExecutable.Current(), nodeArguments);
            }
            else
            {
                EndToEndBenchmarks.Run(ctx, parse.GetValue(connect), parse.GetValue(server) == "child" ? FastBrokerExecutable.Current() : null);
            }
        }));
        bench.Subcommands.Add(e2e);
        bench.Subcommands.Add(FailoverScenario());
        return bench;
    }

    private static List<string> ParseAckModes(string[]? values) => [.. (values ?? []).SelectMany(a => a.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))];

    private static Command FailoverScenario()
    {
        var failover = Scenario("failover", "SIGKILL the primary of a failover pair (witness + 2 nodes, child processes) under standby-durable publishing: kill → first confirm by the new primary, lost and duplicated payloads.", null);
        var rounds = new Option<int>("--rounds") { Description = "Primary kills (failover samples).", DefaultValueFactory = _ => 5 };
        var rate = new Option<int>("--rate") { Description = "Publishes per second while killing.", DefaultValueFactory = _ => 2_000 };
        foreach (var positive in new[] { rounds, rate })
        {
            OptionRules.Check(positive, static (result, value) =>
            {
                if (value < 1)
                {
                    result.AddError($"{result.Option.Name} must be at least 1");
                }
            });
        }

        failover.Options.Add(rounds);
        failover.Options.Add(rate);
        failover.SetAction(parse => RunScenario(parse, "failover", ctx => FailoverBenchmark.Run(ctx, new FailoverOptions
        {
            Executable = FastBrokerExecutable.Current(),
            Rounds = parse.GetValue(rounds),
            Rate = parse.GetValue(rate),
        })));
        return failover;
    }

    private static void RunRing(BenchContext ctx) => FastBroker.Bench.Ring.RingBenchmarks.Run(ctx);

    private static void RunJournal(BenchContext ctx) => FastBroker.Bench.Journal.JournalBenchmarks.Run(ctx);

    private static void RunBroker(BenchContext ctx) => FastBroker.Bench.Broker.BrokerBenchmarks.Run(ctx);

    private static readonly Option<bool> s_json = new("--json") { Description = "One JSON object per result line, no table or progress." };
    private static readonly Option<long?> s_messages = new("--messages") { Description = "Messages per run, at least 1 (default: the scenario's own)." };
    private static readonly Option<int> s_runs = new("--runs") { Description = "Runs per variant, at least 1; the median is reported.", DefaultValueFactory = _ => 3 };
    private static readonly Option<double> s_warmup = new("--warmup") { Description = "Seconds of CPU-busy warm-up before measuring, 0 (none) to 3600.", DefaultValueFactory = _ => 20 };
    private static readonly Option<string?> s_filter = new("--filter") { Description = "Only variants whose name contains this text." };
    private static readonly Option<string?> s_dir = new("--dir") { Description = "Directory for file-based benchmarks (default: a temp directory)." };

    private static int RunScenario(ParseResult parse, string name, Action<BenchContext> run)
    {
        var jsonMode = parse.GetValue(s_json);
        if (!jsonMode)
        {
            ConsoleTableReporter.PlainWhenRedirected();
        }

        IBenchReporter reporter = jsonMode ? new JsonLinesReporter(Console.Out) : new ConsoleTableReporter(name);
        var ctx = new BenchContext(reporter, parse.GetValue(s_messages), parse.GetValue(s_runs), parse.GetValue(s_warmup), parse.GetValue(s_filter), parse.GetValue(s_dir));
        run(ctx);
        (reporter as ConsoleTableReporter)?.Finish();
        return 0;
    }

    private static Command Scenario(string name, string description, Action<BenchContext>? run)
    {
        var cmd = new Command(name, description) { s_json, s_messages, s_runs, s_warmup, s_filter, s_dir };
        if (run is not null)
        {
            cmd.SetAction(parse => RunScenario(parse, name, run));
        }

        return cmd;
    }
}
