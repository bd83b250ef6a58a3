using FastBroker.Bench.Infrastructure;
using FastBroker.Compare.Systems;

namespace FastBroker.Compare.Tests;

public sealed class FastBrokerFsyncedFixture() : SystemFixture("fastbroker-fsynced");

/// <summary>
/// <c>fastbroker-fsynced</c>: FastBroker with every publish confirmed at <c>Fsynced</c>, the like-for-like line for
/// RabbitMQ's confirms of persistent messages. It takes part in <c>publish</c> and <c>confirm-latency-10k</c> only.
/// </summary>
public sealed class FastBrokerFsyncedTests(FastBrokerFsyncedFixture fixture) : IClassFixture<FastBrokerFsyncedFixture>
{
    [Fact]
    public async Task The_runner_reports_publish_and_confirm_latency_confirmed_at_Fsynced_and_no_fanout()
    {
        using var output = new StringWriter();
        var ctx = new BenchContext(new JsonLinesReporter(output), Messages: 2_000, Runs: 1, WarmupSeconds: 0);
        await CompareBenchmark.RunScenariosAsync(ctx, [fixture.System], 2_000, 1_000).WaitAsync(TimeSpan.FromSeconds(90));

        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["publish-fastbroker-fsynced", "confirm-latency-10k-fastbroker-fsynced"], lines.Select(Variant));
        Assert.All(lines, l => Assert.Contains("confirmed at Fsynced", l, StringComparison.Ordinal));

        // The server really makes Fsynced topics: a publish that asks for Fsynced is refused (InvalidArgument) on any
        // other topic.
        var endpoint = ((FastBrokerSystem)fixture.System).Endpoint;
        await using var client = await FastBroker.Client.BrokerClient.ConnectAsync(FastBroker.Client.BrokerClientOptions.Default with { Endpoints = [endpoint], Reconnect = false });
        var offset = await client.PublishAsync("compare.check-fsynced", new byte[10], new FastBroker.Client.PublishOptions { Durability = FastBroker.Protocol.Durability.Fsynced });
        Assert.Equal(0, offset);
    }

    private static string? Variant(string line)
    {
        using var doc = System.Text.Json.JsonDocument.Parse(line);
        return doc.RootElement.GetProperty("variant").GetString();
    }
}

/// <summary>How FastBroker's lines are set against the competitors' (no servers: the ratios over given results).</summary>
public sealed class RatioTests
{
    [Fact]
    public void Each_FastBroker_line_is_read_against_its_own_baseline_and_the_other_competitors()
    {
        var systems = new IComparedSystem[] { new Named("fastbroker"), new Named("fastbroker-fsynced"), new Named("redis"), new Named("rabbitmq") };
        var results = new List<BenchResult>
        {
            new("compare", "publish-fastbroker") { MsgsPerSec = 800 },
            new("compare", "publish-fastbroker-fsynced") { MsgsPerSec = 100 },
            new("compare", "publish-redis") { MsgsPerSec = 200 },
            new("compare", "publish-rabbitmq") { MsgsPerSec = 50 },
        };

        var rated = CompareBenchmark.WithRatios("publish", systems, results).ToList();

        Assert.Equal(("publish-redis", 4.0), (rated[0].Baseline, rated[0].Ratio));
        Assert.Equal([new("vsRabbitmq", 16.0)], rated[0].Extra!);
        Assert.Equal(("publish-rabbitmq", 2.0), (rated[1].Baseline, rated[1].Ratio));
        Assert.Equal([new("vsRedis", 0.5)], rated[1].Extra!);
        Assert.Null(rated[2].Baseline);
        Assert.Null(rated[3].Ratio);
    }

    [Fact]
    public void A_latency_ratio_is_the_baseline_p50_over_FastBroker_s()
    {
        var systems = new IComparedSystem[] { new Named("redis"), new Named("fastbroker") };
        var results = new List<BenchResult>
        {
            new("compare", "confirm-latency-10k-redis") { P50Ns = 300_000 },
            new("compare", "confirm-latency-10k-fastbroker") { P50Ns = 100_000 },
        };

        var rated = CompareBenchmark.WithRatios("confirm-latency-10k", systems, results).ToList();

        Assert.Equal(("confirm-latency-10k-redis", 3.0), (rated[1].Baseline, rated[1].Ratio));
        Assert.Contains("baseline p50 ÷ FastBroker p50", rated[1].Note, StringComparison.Ordinal);
    }

    private sealed class Named(string name) : IComparedSystem
    {
        public string Name => name;

        public string Variant(string scenario) => $"{scenario}-{name}";

        public string Durability(string scenario) => "";

        public Task<double> PublishAsync(int n, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<double> FanoutAsync(int n, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<double> ConfirmLatencyAsync(int count, int rate, LogLinearHistogram histogram, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
