using System.Globalization;
using System.Runtime.CompilerServices;
using FastBroker.Server;
using FastBroker.Testing;

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

    /// <summary>
    /// A work-queue group whose feed loop keeps failing is counted (<c>GroupSnapshot.FeedLoopFailures</c>, the admin
    /// group document), and an operator who watches Prometheus sees it too: <c>fastbroker_group_feed_loop_failures_total</c>.
    /// </summary>
    [Fact]
    public async Task A_groups_feed_loop_failures_are_a_counter_of_the_metrics()
    {
        const string Series = "fastbroker_group_feed_loop_failures_total{topic=\"feed\",group=\"g\"}";
        await using var f = await ServerFixture.StartAsync();
        await using var admin = await AdminHttpServer.StartAsync(f.Broker, f.Server, "127.0.0.1", 0);
        using var http = new HttpClient { BaseAddress = new Uri($"http://{admin.EndPoint}/"), Timeout = RawConnection.ReadTimeout };
        var calls = 0;
        SetFeedLoopHook(f.Broker, name =>
        {
            if (name == "g" && Interlocked.Increment(ref calls) <= 2)
            {
                throw new InvalidOperationException("test: the feed loop's pump failed");
            }
        });
        try
        {
            using var member = f.Broker.JoinGroup("feed", "g", GroupOptions.Default with { Prefetch = 10 });
            var before = await http.GetStringAsync("metrics");
            Assert.Contains("# TYPE fastbroker_group_feed_loop_failures_total counter\n", before, StringComparison.Ordinal);
            Assert.True(Value(before, Series) == 0, $"before any failure: {Value(before, Series)} (-1: no such series)");

            await f.Broker.PublishAsync("feed", new byte[8]);
            await Eventually.TrueAsync(() => f.Broker.GetSnapshot().Groups.Single(g => g.Group == "g").FeedLoopFailures == 2, "the feed loop fails twice");
            var after = Value(await http.GetStringAsync("metrics"), Series);
            Assert.True(after == 2, $"the group's feed loop failed twice, /metrics says {after} (-1: no such series)");
        }
        finally
        {
            SetFeedLoopHook(f.Broker, null);
        }
    }

    // Broker.FeedLoopHook is internal to the broker (whose internals this assembly does not see): set through an accessor.
    [UnsafeAccessor(UnsafeAccessorKind.Method, Name = "set_FeedLoopHook")]
    private static extern void SetFeedLoopHook(Broker broker, Action<string>? hook);

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
