using System.Text;
using FastBroker.Testing;
using static FastBroker.BrokerTests.Consume;

namespace FastBroker.BrokerTests;

/// <summary>What a member can still do once it has left, and a join refused for its prefetch (embedded audit).</summary>
public class MemberAfterLeaveTests
{
    /// <summary>
    /// <see cref="WorkQueueMember.Abandon"/> acts as a crash: the member's deliveries wait for their visibility timeout
    /// and go to another member. Its ACK or NACK after that is refused (before, its ACK was taken: a "crashed" consumer
    /// settled a delivery the group was about to give to another).
    /// </summary>
    [Fact]
    public async Task An_abandoned_member_can_neither_ack_nor_nack_what_it_was_handed()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        await b.PublishAsync("crashy", Encoding.UTF8.GetBytes("j0"));
        await b.PublishAsync("crashy", Encoding.UTF8.GetBytes("j1"));
        var options = GroupOptions.Default with { Prefetch = 2, VisibilityTimeout = TimeSpan.FromMilliseconds(200) };
        var crashed = b.JoinGroup("crashy", "g", options);
        var got = FetchMany(crashed, 2, "the member is handed both");
        crashed.Abandon();

        Assert.False(crashed.Ack(got[0].Offset, got[0].DeliveryCount), "an abandoned member's ack is refused");
        Assert.Equal(WorkQueueOutcome.UnknownDelivery, crashed.Nack(got[1].Offset, got[1].DeliveryCount, requeue: false));
        Assert.Equal(0, b.GetSnapshot().Groups.Single().Acked);
        Assert.Equal(0, b.GetSnapshot().Groups.Single().DeadLettered);

        using var next = b.JoinGroup("crashy", "g", options);
        var again = FetchMany(next, 2, "both come back after their visibility timeout");
        Assert.Equal(["j0", "j1"], again.Select(x => x.Payload).Order(StringComparer.Ordinal));
        foreach (var x in again)
        {
            Assert.True(next.Ack(x.Offset, x.DeliveryCount));
        }

        await Eventually.TrueAsync(() => b.GetSnapshot().Groups.Single() is { Acked: 2, InFlight: 0 }, "both acked by the next member");
    }

    /// <summary>A join refused for its prefetch leaves no group behind (before, the group and its state file were made first).</summary>
    [Theory]
    [InlineData(0)]
    [InlineData(-3)]
    public async Task A_join_with_a_prefetch_below_1_is_refused_before_the_group_is_made(int prefetch)
    {
        await using var f = await BrokerFixture.StartAsync();
        await f.Broker.PublishAsync("jobs", "j"u8.ToArray());
        var e = Assert.Throws<BrokerException>(() => f.Broker.JoinGroup("jobs", "g", prefetch: prefetch));
        Assert.Equal(BrokerErrorCode.InvalidArgument, e.Code);
        Assert.Contains("prefetch", e.Message, StringComparison.Ordinal);
        Assert.Empty(f.Broker.GetSnapshot().Groups);
        Assert.Empty(Directory.EnumerateFiles(f.DataDirectory, "g.state", SearchOption.AllDirectories));
    }
}
