using System.Text;
using System.Text.Json;
using FastBroker.Client;
using FastBroker.Protocol;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>A topic read from its first offset to its head through a fresh client on one node (the primary).</summary>
internal sealed class TopicContent
{
    private TopicContent(long tail, List<string> payloads)
    {
        Tail = tail;
        Payloads = payloads;
    }

    public long Tail { get; }

    public long Head => Tail + Payloads.Count;

    /// <summary>Payloads by offset − <see cref="Tail"/>.</summary>
    public IReadOnlyList<string> Payloads { get; }

    public string At(long offset) => Payloads[(int)(offset - Tail)];

    /// <summary>Asserts that <paramref name="count"/> messages from <paramref name="from"/> are <c>prefix0000</c>, <c>prefix0001</c>, ….</summary>
    public void AssertRun(long from, string prefix, int count)
    {
        for (var i = 0; i < count; i++)
        {
            Assert.Equal($"{prefix}{i:D4}", At(from + i));
        }
    }

    public static async Task<TopicContent> ReadAsync(string endpoint, string topic)
    {
        await using var reader = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [endpoint], Reconnect = false, ClientName = "failover-reader" });
        using var stats = JsonDocument.Parse(await reader.AdminAsync(AdminQuery.TopicStats, topic));
        var t = stats.RootElement.GetProperty("topic");
        var tail = t.GetProperty("tail").GetInt64();
        var head = t.GetProperty("head").GetInt64();
        var payloads = new List<string>((int)(head - tail));
        await using var sub = await reader.CreateSubscriptionAsync(topic, SubscribeOptions.Default with { Start = SubscribeStart.Earliest, Credit = 8192 });
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (payloads.Count < head - tail)
        {
            var m = await sub.ReadAsync(timeout.Token);
            Assert.Equal(tail + payloads.Count, m.Offset); // dense: offsets 0, 1, 2, … with no gap
            payloads.Add(Encoding.UTF8.GetString(m.Payload.Span));
        }

        return new TopicContent(tail, payloads);
    }
}
