using FastBroker.Protocol;

namespace FastBroker.ServerTests;

public class SlowSubscriberTests
{
    [Fact]
    public async Task A_subscriber_without_credit_never_holds_the_publisher_back_and_later_gets_everything_in_order()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var slow = await f.ConnectAsync();
        await slow.SubscribeAsync(1, 1, "stream", 1, Protocol.StartKind.Latest);
        Assert.Equal(FrameType.Ok, (await slow.ReadAsync()).Type);

        await using var pub = await f.ConnectAsync();
        const int N = 5_000;
        await pub.PublishNumberedAsync("stream", N, perBatch: 250);

        // All N confirmed while the subscriber held one credit: it got exactly one message so far.
        var first = await slow.ReadDeliveriesAsync(1);
        Assert.Single(await slow.RoundTripAsync());
        Assert.Equal(1, f.Broker.GetSnapshot().Subscriptions.Single().Delivered);

        await slow.SendAsync(w => FrameWriter.WriteCredit(w, 0, 1, N));
        var rest = await slow.ReadDeliveriesAsync(N - 1);
        Assert.Equal(Enumerable.Range(0, N).Select(i => (ulong)i), first.Concat(rest).Select(d => d.Offset));
        Assert.Equal($"m{N - 1}", rest[^1].Text);
    }
}
