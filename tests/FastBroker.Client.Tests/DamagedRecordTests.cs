using System.Text;
using FastBroker.Client;
using FastBroker.Protocol;
using FastBroker.Testing;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

/// <summary>
/// A client subscription reaching a damaged record of a sealed segment the broker's open trusted (bit rot while it was
/// stopped): the server ends it once with DamagedRecord naming the topic and the offset, the client's other
/// subscription goes on, and a subscription started at the next offset reads the intact records after it.
/// </summary>
public class DamagedRecordTests
{
    private const int Records = 2000;

    [Fact]
    public async Task A_subscription_reaching_a_damaged_record_ends_once_with_DamagedRecord_and_a_start_after_it_reads_on()
    {
        await using var f = await ServerFixture.StartAsync(broker: o => o with { VerifySealedSegmentsOnOpen = false });
        f.Broker.CreateTopic("rot", TopicOptions.Default with { SegmentBytes = 64 << 10, MaxMessageBytes = 16 << 10 });
        for (var i = 0; i < Records; i++)
        {
            await f.Broker.PublishAsync("rot", Encoding.UTF8.GetBytes($"b{i}:").Concat(new byte[100]).ToArray());
        }

        (string Segment, long Offset, long Position) victim = (string.Empty, 0, 0);
        await f.RestartBrokerAsync(beforeOpen: () => victim = RecordDamage.FlipPayloadByte(Path.Combine(f.DataDirectory, "topics", "rot", "journal"), 1, 5));

        var client = await f.ConnectAsync();
        await using var calm = await Within(client.CreateSubscriptionAsync("calm", SubscribeOptions.Default with { Start = SubscribeStart.Earliest }));
        await using var damaged = await Within(client.CreateSubscriptionAsync("rot", SubscribeOptions.Default with { Start = SubscribeStart.Earliest, Credit = 100 }));
        using var cts = new CancellationTokenSource(Deadline);
        var seen = new List<long>();
        var error = await Assert.ThrowsAsync<BrokerClientException>(async () =>
        {
            await foreach (var m in damaged.ReadAllAsync(cts.Token))
            {
                Assert.StartsWith($"b{m.Offset}:", m.GetPayloadString(), StringComparison.Ordinal);
                seen.Add(m.Offset);
            }
        });
        Assert.Equal(ErrorCode.DamagedRecord, error.ErrorCode);
        Assert.Contains($"topic 'rot': the record at offset {victim.Offset} is damaged", error.Reason, StringComparison.Ordinal);
        Assert.Contains(victim.Segment, error.Reason, StringComparison.Ordinal);
        Assert.Equal(Enumerable.Range(0, (int)victim.Offset).Select(i => (long)i), seen);
        Assert.Single(f.Events, e => e.Kind == BrokerClientEventKind.SubscriptionEnded && e.Code == ErrorCode.DamagedRecord);

        // The connection and the client's other subscription go on.
        await Within(client.PublishAsync("calm", Bytes("still here")));
        Assert.Equal("still here", (await TakeAsync(calm, 1)).Single().GetPayloadString());

        // Past it: the intact records after it in its segment, and on.
        await using var after = await Within(client.CreateSubscriptionAsync("rot", SubscribeOptions.Default with { Start = SubscribeStart.AtOffset(victim.Offset + 1) }));
        var rest = await TakeAsync(after, Records - (int)victim.Offset - 1);
        Assert.Equal(Enumerable.Range((int)victim.Offset + 1, Records - (int)victim.Offset - 1).Select(i => (long)i), rest.Select(m => m.Offset));
        Assert.All(rest, m => Assert.StartsWith($"b{m.Offset}:", m.GetPayloadString(), StringComparison.Ordinal));
        var topic = Assert.Single(f.Broker.GetSnapshot().Topics, t => t.Name == "rot");
        Assert.Equal((1, victim.Offset), (topic.DamagedRecords, topic.FirstDamagedOffset));
    }
}
