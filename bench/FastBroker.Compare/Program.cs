using System.CommandLine;
using FastBroker.Bench.Infrastructure;
using FastBroker.Compare;

/// <summary>
/// <c>FastBroker.Compare</c>: FastBroker next to Redis Streams, NATS and RabbitMQ on the same box. Starts each
/// system's server itself as a child process on 127.0.0.1 (FastBroker as <c>fastbroker serve</c>; redis-server,
/// nats-server and RabbitMQ from the Debian packages: <c>tools/install-competitors.sh</c>; a system whose server is
/// missing is skipped with a line saying so), drives the same workloads through each with the client a .NET user of
/// it would use (BrokerClient, StackExchange.Redis, NATS.Net, RabbitMQ.Client 7) — <c>publish</c>, <c>fanout-3</c>,
/// <c>confirm-latency-10k</c>, 100-byte payloads, durability as comparable as each allows (README.md) — in
/// interleaved rounds, and reports them side by side with FastBroker's ratios:
/// <code>
/// dotnet run -c Release --project bench/FastBroker.Compare -- [--json] [--runs 3] [--messages 1000000]
///     [--warmup 20] [--filter publish] [--systems fastbroker,fastbroker-fsynced,redis,nats,rabbitmq]
/// </code>
/// </summary>
internal static class Program
{
    private static int Main(string[] args)
    {
        var json = new Option<bool>("--json") { Description = "One JSON object per result line, no table or progress." };
        var messages = new Option<long?>("--messages") { Description = "Messages per throughput run (default 1,000,000); latency runs send a tenth, 20,000 to 100,000." };
        var runs = new Option<int>("--runs") { Description = "Measured rounds (after one warm-up round); the median is reported.", DefaultValueFactory = _ => 3 };
        var warmup = new Option<double>("--warmup") { Description = "Seconds of CPU-busy warm-up before measuring, 0 (none) to 3600.", DefaultValueFactory = _ => 20 };
        var filter = new Option<string?>("--filter") { Description = "Only variants whose name contains this text (e.g. publish, -redis)." };
        var dir = new Option<string?>("--dir") { Description = "Where the servers' data directories go (default: the temp directory)." };
        var systems = new Option<string[]>("--systems") { Description = "Comma-separated: fastbroker, fastbroker-fsynced (publish and confirm-latency-10k confirmed at Fsynced), redis, nats, rabbitmq (default: all)." };
        var root = new RootCommand("FastBroker against Redis Streams, NATS and RabbitMQ on the same box: publish, fanout-3, confirm-latency-10k.")
        {
            json, messages, runs, warmup, filter, dir, systems,
        };
        // On the options, not the command: System.CommandLine 2.0 hands a command validator 0 for an option left off the
        // command line instead of its default (--runs was refused unless given), and an option validator runs only for
        // an option given.
        Check(messages, v => v is < 1 or > int.MaxValue, $"expected 1 to {int.MaxValue}");
        Check(runs, v => v < 1, "expected at least 1");
        Check(warmup, v => v is < 0 or > 3600, "expected 0 to 3600 seconds");
        systems.Validators.Add(result =>
        {
            try
            {
                CompareBenchmark.ParseSystems(result.GetValueOrDefault<string[]>() ?? []);
            }
            catch (ArgumentException e)
            {
                result.AddError(e.Message);
            }
        });
        root.SetAction(parse =>
        {
            // Signals kill the servers from here on, also one that comes while the first is starting.
            FastBroker.Compare.Servers.ChildProcesses.Hook();

            // Servers a kill -9 of an earlier run left behind (its handlers never ran): killed, their directories deleted.
            FastBroker.Compare.Servers.Orphans.Reap(Console.Error, parse.GetValue(dir));
            var jsonMode = parse.GetValue(json);
            var table = jsonMode ? null : new TextTableReporter(Console.Out);
            IBenchReporter reporter = table is null ? new JsonLinesReporter(Console.Out) : table;
            var ctx = new BenchContext(reporter, parse.GetValue(messages), parse.GetValue(runs), parse.GetValue(warmup), parse.GetValue(filter), parse.GetValue(dir));
            using var cancel = new CancellationTokenSource();
            CompareBenchmark.RunAsync(ctx, CompareBenchmark.ParseSystems(parse.GetValue(systems) ?? []), cancellationToken: cancel.Token).GetAwaiter().GetResult();
            table?.Finish();
            return 0;
        });
        return root.Parse(args).Invoke();
    }

    /// <summary>
    /// Refuses a value of <paramref name="option"/> for which <paramref name="bad"/> holds. A token that does not convert
    /// ("--runs x") already carries System.CommandLine's conversion error, and reading it throws: skipped, that error
    /// is the usage error.
    /// </summary>
    private static void Check<T>(Option<T> option, Func<T, bool> bad, string expected) =>
        option.Validators.Add(result =>
        {
            T value;
            try
            {
                value = result.GetValueOrDefault<T>();
            }
            catch (InvalidOperationException) when (result.Errors.Any())
            {
                return;
            }

            if (bad(value))
            {
                result.AddError($"{option.Name} {value}: {expected}");
            }
        });
}
