using FastBroker.Bench.Infrastructure;

namespace FastBroker.Compare.Tests;

/// <summary>
/// Each scenario once against one system's real server, small counts: the counts the scenario checks itself (it throws
/// on a shortfall) and positive figures. Subclassed per system, each class one server.
/// </summary>
public abstract class SystemScenarioTests<TFixture>(TFixture fixture)
    where TFixture : SystemFixture
{
    private const int Messages = 2_000;
    private const int LatencyMessages = 1_000;
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Publish_confirms_every_message()
    {
        var rate = await fixture.System.PublishAsync(Messages, CancellationToken.None).WaitAsync(s_deadline);
        Assert.True(rate > 0, $"rate {rate}");
    }

    [Fact]
    public async Task Fanout_delivers_every_message_to_each_of_3_subscribers()
    {
        var rate = await fixture.System.FanoutAsync(Messages, CancellationToken.None).WaitAsync(s_deadline);
        Assert.True(rate > 0, $"rate {rate}");
    }

    [Fact]
    public async Task Confirm_latency_times_every_message_from_its_scheduled_send()
    {
        var h = new LogLinearHistogram();
        var rate = await fixture.System.ConfirmLatencyAsync(LatencyMessages, 10_000, h, CancellationToken.None).WaitAsync(s_deadline);
        Assert.Equal(LatencyMessages, h.Count);
        Assert.True(rate > 0, $"rate {rate}");
        Assert.True(h.ValueAtPercentile(50) > 0 && h.Max >= h.ValueAtPercentile(99.9), $"p50 {h.ValueAtPercentile(50)} max {h.Max}");
    }

    [Fact]
    public async Task A_run_through_the_runner_reports_each_scenario_with_counts()
    {
        using var output = new StringWriter();
        var ctx = new BenchContext(new JsonLinesReporter(output), Messages: Messages, Runs: 1, WarmupSeconds: 0);
        await CompareBenchmark.RunScenariosAsync(ctx, [fixture.System], Messages, LatencyMessages).WaitAsync(TimeSpan.FromSeconds(90));

        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length);
        foreach (var (line, scenario) in lines.Zip(CompareBenchmark.Scenarios))
        {
            using var doc = System.Text.Json.JsonDocument.Parse(line);
            var root = doc.RootElement;
            Assert.Equal("compare", root.GetProperty("scenario").GetString());
            Assert.Equal(fixture.System.Variant(scenario), root.GetProperty("variant").GetString());
            Assert.True(root.GetProperty("msgsPerSec").GetDouble() > 0, line);
            Assert.Equal(scenario == "confirm-latency-10k" ? LatencyMessages : Messages, root.GetProperty("messages").GetInt64());
            Assert.Contains(fixture.System.Durability(scenario), root.GetProperty("note").GetString(), StringComparison.Ordinal);
        }
    }
}

public sealed class FastBrokerScenarioTests(FastBrokerFixture fixture) : SystemScenarioTests<FastBrokerFixture>(fixture), IClassFixture<FastBrokerFixture>;

public sealed class RedisScenarioTests(RedisFixture fixture) : SystemScenarioTests<RedisFixture>(fixture), IClassFixture<RedisFixture>;

public sealed class NatsScenarioTests(NatsFixture fixture) : SystemScenarioTests<NatsFixture>(fixture), IClassFixture<NatsFixture>;

public sealed class RabbitMqScenarioTests(RabbitMqFixture fixture) : SystemScenarioTests<RabbitMqFixture>(fixture), IClassFixture<RabbitMqFixture>;
