using System.Text;
using FastBroker.Testing;
using static FastBroker.BrokerTests.Consume;

namespace FastBroker.BrokerTests;

/// <summary>
/// <c>ReadAllAsync</c> runs "until cancelled or disposed", and fetches a batch at a time: a subscription or a member
/// disposed while its loop is in the middle of a batch (from the loop's body, or from another thread at shutdown) gives
/// nothing more, rather than the rest of the batch. For a work-queue member the rest of the batch went back to the group
/// with the leave and on to another member: before, both consumers worked on the same messages at once.
/// </summary>
public class ReadAllAfterCloseTests
{
    [Fact]
    public async Task A_member_that_leaves_in_the_middle_of_a_batch_is_given_nothing_more_as_its_deliveries_go_to_another()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        const int Jobs = 8;
        var options = GroupOptions.Default with { Prefetch = Jobs, VisibilityTimeout = TimeSpan.FromMinutes(10) };
        for (var i = 0; i < Jobs; i++)
        {
            await b.PublishAsync("jobs", Encoding.UTF8.GetBytes($"job{i}"));
        }

        var leaving = b.JoinGroup("jobs", "g", options);
        await Eventually.TrueAsync(() => b.GetSnapshot().Groups.Single().InFlight == Jobs, "the member is assigned every job");
        var given = new List<long>();
        await foreach (var m in leaving.ReadAllAsync().WithCancellation(new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token))
        {
            given.Add(m.Offset);
            leaving.Dispose(); // its unacked deliveries go back to the group at once
        }

        using var other = b.JoinGroup("jobs", "g", options);
        var taken = FetchMany(other, Jobs, "the other member is given every job the leaving one gave back");
        Assert.True(given.Count == 1, $"the member that left after its first message was given {given.Count} messages, {given.Count - 1} of them after it left, while the other member was given them too ({string.Join(", ", taken.Select(t => $"{t.Offset}#{t.DeliveryCount}"))})");
    }

    [Fact]
    public async Task A_member_loop_that_leaves_in_the_middle_of_a_batch_gives_the_rest_back_at_once_with_no_attempt_used()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        const int Jobs = 4;
        // A visibility timeout no test run reaches: what comes again, comes again because it was given back.
        var options = GroupOptions.Default with { Prefetch = Jobs, VisibilityTimeout = TimeSpan.FromMinutes(10) };
        for (var i = 0; i < Jobs; i++)
        {
            await b.PublishAsync("jobs", Encoding.UTF8.GetBytes($"job{i}"));
        }

        using var member = b.JoinGroup("jobs", "g", options);
        await Eventually.TrueAsync(() => b.GetSnapshot().Groups.Single().InFlight == Jobs, "the member is assigned every job");
        await foreach (var m in member.ReadAllAsync().WithCancellation(new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token))
        {
            Assert.True(member.Ack(m));
            break; // the other three were fetched with it, and never given to this loop
        }

        // Before, they stayed in flight with the member, given to nobody, until their visibility timeout, and then came
        // again as second deliveries.
        var again = FetchMany(member, Jobs - 1, "the jobs the loop left come again at once");
        Assert.Equal(["job1", "job2", "job3"], again.Select(t => t.Payload));
        Assert.All(again, t => Assert.Equal(1, t.DeliveryCount));
    }

    [Fact]
    public async Task A_subscription_disposed_in_the_middle_of_a_batch_is_given_nothing_more()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        for (var i = 0; i < 10; i++)
        {
            await b.PublishAsync("t", Encoding.UTF8.GetBytes($"m{i}"));
        }

        var sub = b.Subscribe("t", new SubscriptionOptions { Start = StartPosition.Earliest });
        var given = 0;
        await foreach (var m in sub.ReadAllAsync().WithCancellation(new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token))
        {
            given++;
            sub.Dispose();
        }

        Assert.Equal(1, given);
        Assert.Equal(1, sub.Delivered);
    }
}
