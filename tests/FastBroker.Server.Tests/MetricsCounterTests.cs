using System.Globalization;
using FastBroker.Server;

namespace FastBroker.ServerTests;

/// <summary>
/// The <c>_total</c> series of <c>/metrics</c> are counters: they never go down while the broker runs, also when the
/// subscriptions they count close (Prometheus reads a drop as a counter reset, and rate() then reports nonsense).
/// </summary>
public class MetricsCounterTests
{
    private const string Delivered = "fastbroker_subscription_delivered_total{pattern=\"prices\",durable=\"\"}";
    private const string Filtered = "fastbroker_subscription_filtered_total{pattern=\"prices\",durable=\"\"}";

    [Fact]
    public async Task Subscription_counters_keep_what_closed_subscriptions_counted()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var admin = await AdminHttpServer.StartAsync(f.Broker, f.Server, "127.0.0.1", 0);
        using var http = new HttpClient { BaseAddress = new Uri($"http://{admin.EndPoint}/"), Timeout = RawConnection.ReadTimeout };
        for (var i = 0; i < 5; i++)
        {
            await f.Broker.PublishAsync("prices", new byte[8]);
        }

        var scrapes = new List<(string When, long Delivered, long Filtered)>();
        async Task ScrapeAsync(string when)
        {
            var text = await http.GetStringAsync("metrics");
            scrapes.Add((when, Value(text, Delivered), Value(text, Filtered)));
        }

        using (var first = f.Broker.Subscribe("prices", new SubscriptionOptions { Start = StartPosition.Earliest }))
        {
            Assert.Equal(5, FetchAll(first, 5));
            await ScrapeAsync("first open, 5 delivered");
        }

        await ScrapeAsync("first closed");
        for (var i = 0; i < 3; i++)
        {
            await f.Broker.PublishAsync("prices", new byte[8]);
        }

        var filters = new Dictionary<string, string> { ["region"] = "eu" }; // no message has it: all 8 filtered
        using (var second = f.Broker.Subscribe("prices", new SubscriptionOptions { Start = StartPosition.Earliest }))
        using (var filtering = f.Broker.Subscribe("prices", new SubscriptionOptions { Start = StartPosition.Earliest, HeaderFilters = filters }))
        {
            Assert.Equal(8, FetchAll(second, 8));
            Assert.Equal(0, FetchAll(filtering, 0));
            await ScrapeAsync("second open, 8 delivered");
        }

        await ScrapeAsync("second closed");

        var report = string.Join("; ", scrapes.Select(s => $"{s.When}: delivered {s.Delivered}, filtered {s.Filtered}"));
        Assert.True(scrapes[0].Delivered == 5, report);
        Assert.True(scrapes.Zip(scrapes.Skip(1)).All(p => p.Second.Delivered >= p.First.Delivered && p.Second.Filtered >= p.First.Filtered), "a counter went down: " + report);
        Assert.True(scrapes[2].Delivered == 13 && scrapes[3].Delivered == 13, report);
        Assert.True(scrapes[3].Filtered == 8, report);
    }

    /// <summary>Fetches until <paramref name="expected"/> messages were delivered (bounded), then once more: returns the count.</summary>
    private static long FetchAll(Subscription subscription, long expected)
    {
        var handler = new Counter();
        for (var attempt = 0; attempt < 1000 && handler.Count < expected; attempt++)
        {
            if (subscription.Fetch(64, ref handler) == 0)
            {
                Thread.Sleep(1); // polling a subscription with a bound, not a synchronisation sleep
            }
        }

        subscription.Fetch(64, ref handler); // nothing more: the count is exact, and a filtering subscription examines them all
        return handler.Count;
    }

    /// <summary>The value of a series, or -1 when the exposition has no such series.</summary>
    private static long Value(string text, string series)
    {
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith(series + " ", StringComparison.Ordinal))
            {
                return long.Parse(line.AsSpan(series.Length + 1), NumberStyles.Integer, CultureInfo.InvariantCulture);
            }
        }

        return -1;
    }

    private struct Counter : IMessageHandler
    {
        public long Count;

        public void OnMessage(scoped in MessageView message) => Count++;
    }
}
