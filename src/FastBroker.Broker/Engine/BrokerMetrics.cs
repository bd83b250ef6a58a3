using System.Diagnostics.Metrics;

namespace FastBroker.Engine;

/// <summary>
/// The broker's <see cref="System.Diagnostics.Metrics"/> instruments: observable gauges and counters read from the
/// same counters as <see cref="Broker.GetSnapshot"/>, so nothing is counted twice on the hot path.
/// </summary>
internal sealed class BrokerMetrics : IDisposable
{
    private readonly Meter _meter;

    public BrokerMetrics(Broker broker, string meterName)
    {
        _meter = new Meter(meterName, "1.0");
        _meter.CreateObservableCounter("fastbroker.topic.published", () => Each(broker, s => s.Topics.Select(t => Measure(t.Published, "topic", t.Name))), "{message}", "Messages accepted per topic");
        _meter.CreateObservableCounter("fastbroker.topic.published_bytes", () => Each(broker, s => s.Topics.Select(t => Measure(t.PublishedBytes, "topic", t.Name))), "By", "Payload bytes accepted per topic");
        _meter.CreateObservableGauge("fastbroker.topic.head", () => Each(broker, s => s.Topics.Select(t => Measure(t.Head, "topic", t.Name))), "{offset}", "Next offset per topic");
        _meter.CreateObservableCounter("fastbroker.topic.expired", () => Each(broker, s => s.Topics.Select(t => Measure(t.Expired, "topic", t.Name))), "{message}", "Expired messages per topic");
        _meter.CreateObservableGauge("fastbroker.producers", () => broker.IsOpen ? [new Measurement<long>(broker.GetSnapshot().Producers)] : Array.Empty<Measurement<long>>(), "{producer}", "Idempotent producers with a deduplication window");
        _meter.CreateObservableGauge("fastbroker.subscription.lag", () => Each(broker, SubscriptionLags), "{message}", "Head minus position, summed over the open subscriptions with this pattern and durable name");
        _meter.CreateObservableCounter("fastbroker.subscription.delivered", () => Each(broker, s => s.SubscriptionTotals.Select(x => new Measurement<long>(x.Delivered, new KeyValuePair<string, object?>("pattern", x.Pattern), new KeyValuePair<string, object?>("durable", x.DurableName ?? "")))), "{message}", "Messages delivered per pattern and durable name, closed subscriptions included (never goes down)");
        _meter.CreateObservableGauge("fastbroker.group.lag", () => Each(broker, s => s.Groups.Select(g => Measure(g.Lag, "group", g.Topic + "/" + g.Group))), "{message}", "Head minus ack floor per group");
        _meter.CreateObservableGauge("fastbroker.group.in_flight", () => Each(broker, s => s.Groups.Select(g => Measure(g.InFlight, "group", g.Topic + "/" + g.Group))), "{message}", "Unacked deliveries per group");
        _meter.CreateObservableCounter("fastbroker.group.redelivered", () => Each(broker, s => s.Groups.Select(g => Measure(g.Redelivered, "group", g.Topic + "/" + g.Group))), "{message}", "Redeliveries per group");
        _meter.CreateObservableCounter("fastbroker.group.dead_lettered", () => Each(broker, s => s.Groups.Select(g => Measure(g.DeadLettered, "group", g.Topic + "/" + g.Group))), "{message}", "Dead-lettered messages per group");
        _meter.CreateObservableGauge("fastbroker.group.dead_letters_pending", () => Each(broker, s => s.Groups.Select(g => Measure(g.DeadLettersPending, "group", g.Topic + "/" + g.Group))), "{message}", "Dead letters not yet stored in the dead-letter topic per group");
        _meter.CreateObservableCounter("fastbroker.group.dead_letters_dropped", () => Each(broker, s => s.Groups.Select(g => Measure(g.DeadLettersDropped, "group", g.Topic + "/" + g.Group))), "{message}", "Dead letters the dead-letter topic could never store, dropped, per group");
    }

    public void Dispose() => _meter.Dispose();

    private static IEnumerable<Measurement<long>> Each(Broker broker, Func<BrokerSnapshot, IEnumerable<Measurement<long>>> select) =>
        broker.IsOpen ? [.. select(broker.GetSnapshot())] : [];

    /// <summary>
    /// One measurement per (pattern, durable name), summed over the open subscriptions that share it (one per connection,
    /// say), as the server's /metrics does: one per subscription gave an exporter several values for one series.
    /// </summary>
    private static IEnumerable<Measurement<long>> SubscriptionLags(BrokerSnapshot snapshot) =>
        snapshot.Subscriptions
            .GroupBy(x => (x.Pattern, Durable: x.DurableName ?? ""))
            .Select(g => new Measurement<long>(g.Sum(x => x.Lag), new KeyValuePair<string, object?>("pattern", g.Key.Pattern), new KeyValuePair<string, object?>("durable", g.Key.Durable)));

    private static Measurement<long> Measure(long value, string tag, string name) => new(value, new KeyValuePair<string, object?>(tag, name));
}
