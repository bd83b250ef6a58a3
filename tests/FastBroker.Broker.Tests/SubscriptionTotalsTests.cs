using System.Diagnostics.Metrics;
using FastBroker.Engine;

namespace FastBroker.BrokerTests;

/// <summary>
/// The per-(pattern, durable name) subscription totals keep what closed subscriptions counted, so the meter's
/// <c>fastbroker.subscription.delivered</c> counter and <see cref="BrokerSnapshot.SubscriptionTotals"/> never go down;
/// patterns with no open subscription are remembered only up to a bound.
/// </summary>
public class SubscriptionTotalsTests
{
    [Fact]
    public async Task The_delivered_counter_and_the_totals_keep_what_closed_subscriptions_delivered()
    {
        var meterName = "FastBroker.Test." + Guid.NewGuid().ToString("N");
        await using var f = await BrokerFixture.StartAsync(o => o with { MeterName = meterName });
        var b = f.Broker;
        for (var i = 0; i < 4; i++)
        {
            await b.PublishAsync("counted", new byte[4]);
        }

        var readings = new List<(string When, long Meter, long Totals)>();
        void Read(string when) => readings.Add((when, MeterDelivered(meterName, "counted"), b.GetSnapshot().SubscriptionTotals.SingleOrDefault(t => t.Pattern == "counted")?.Delivered ?? -1));

        using (var first = b.Subscribe("counted", new SubscriptionOptions { Start = StartPosition.Earliest }))
        {
            Assert.Equal(4, FetchAll(first, 4));
            Read("first open");
        }

        Read("first closed");
        for (var i = 0; i < 2; i++)
        {
            await b.PublishAsync("counted", new byte[4]);
        }

        using (var second = b.Subscribe("counted", new SubscriptionOptions { Start = StartPosition.Earliest }))
        {
            Assert.Equal(6, FetchAll(second, 6));
            Read("second open");
        }

        Read("second closed");
        var report = string.Join("; ", readings.Select(r => $"{r.When}: meter {r.Meter}, totals {r.Totals}"));
        Assert.True(readings.Select(r => (r.Meter, r.Totals)).SequenceEqual([(4L, 4L), (4L, 4L), (10L, 10L), (10L, 10L)]), report);
    }

    [Fact]
    public void Patterns_with_no_open_subscription_are_kept_up_to_the_bound_least_recently_closed_first_out()
    {
        var table = new SubscriptionTotalsTable(maxIdleKeys: 2);
        table.Opened("a", null);
        table.Opened("b", null);
        table.Opened("c", "durable");
        table.Closed("a", null, delivered: 1, expired: 0, filtered: 0, missed: 0);
        table.Closed("b", null, delivered: 2, expired: 0, filtered: 0, missed: 0);
        Assert.Equal(["a:1", "b:2", "c:0"], Keys(table));

        table.Opened("a", null); // open again: not idle, so not the first to go
        table.Closed("c", "durable", delivered: 3, expired: 0, filtered: 0, missed: 0);
        table.Opened("d", null);
        table.Closed("d", null, delivered: 4, expired: 0, filtered: 0, missed: 0); // idle: b, c, d -> b goes
        Assert.Equal(["a:1", "c:3", "d:4"], Keys(table));

        table.Closed("a", null, delivered: 5, expired: 0, filtered: 0, missed: 0); // idle: c, d, a -> c goes
        Assert.Equal(["a:6", "d:4"], Keys(table));
    }

    /// <summary>
    /// Several open subscriptions may share a pattern and durable name (one per connection): the lag gauge has one
    /// series per (pattern, durable) with their lags summed, as /metrics has, not one measurement each under the same tags.
    /// </summary>
    [Fact]
    public async Task The_lag_gauge_has_one_series_per_pattern_and_durable_name_summed()
    {
        var meterName = "FastBroker.Test." + Guid.NewGuid().ToString("N");
        await using var f = await BrokerFixture.StartAsync(o => o with { MeterName = meterName });
        var b = f.Broker;
        for (var i = 0; i < 5; i++)
        {
            await b.PublishAsync("lagging", new byte[4]);
        }

        var earliest = new SubscriptionOptions { Start = StartPosition.Earliest };
        using var one = b.Subscribe("lagging", earliest);
        using var two = b.Subscribe("lagging", earliest);
        using var named = b.Subscribe("lagging", earliest with { DurableName = "audit" });
        Assert.Equal([5L, 5L, 5L], b.GetSnapshot().Subscriptions.Select(s => s.Lag));

        var series = new List<(string Tags, long Value)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == meterName && instrument.Name == "fastbroker.subscription.lag")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            var labels = new List<string>();
            foreach (var tag in tags)
            {
                labels.Add($"{tag.Key}={tag.Value}");
            }

            series.Add((string.Join(",", labels.Order(StringComparer.Ordinal)), value));
        });
        listener.Start();
        listener.RecordObservableInstruments();

        Assert.Equal(["durable=,pattern=lagging:10", "durable=audit,pattern=lagging:5"], series.Select(s => $"{s.Tags}:{s.Value}").Order(StringComparer.Ordinal));
    }

    private static List<string> Keys(SubscriptionTotalsTable table) => [.. table.Totals([]).Select(t => $"{t.Pattern}:{t.Delivered}")];

    private static long MeterDelivered(string meterName, string pattern)
    {
        long value = -1;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == meterName && instrument.Name == "fastbroker.subscription.delivered")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, measured, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Value as string == pattern)
                {
                    value = Math.Max(value, 0) + measured; // one measurement per series; summed if the same pattern came twice
                }
            }
        });
        listener.Start();
        listener.RecordObservableInstruments();
        return value;
    }

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

        subscription.Fetch(64, ref handler);
        return handler.Count;
    }

    private struct Counter : IMessageHandler
    {
        public long Count;

        public void OnMessage(scoped in MessageView message) => Count++;
    }
}
