using System.Diagnostics;
using System.Text;
using FastBroker.Testing;
using static FastBroker.BrokerTests.Consume;

namespace FastBroker.BrokerTests;

/// <summary>
/// A delivery counts toward MaxDeliveries once it is handed to its member (fetched in-process; the server fetches it
/// to write it to the connection), not when the group assigns it: one still waiting in the member's queue when the
/// member goes was never received.
/// </summary>
public class WorkQueueHandOverTests
{
    [Fact]
    public async Task A_member_that_leaves_before_fetching_its_prefetch_uses_up_no_delivery()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        const int Prefetch = 3;
        const int MaxDeliveries = 2;
        // A visibility timeout no test run reaches: whatever comes back, comes back because its member left.
        var options = GroupOptions.Default with { Prefetch = Prefetch, MaxDeliveries = MaxDeliveries, VisibilityTimeout = TimeSpan.FromMinutes(10) };
        for (var i = 0; i < Prefetch; i++)
        {
            await b.PublishAsync("flaps", Encoding.UTF8.GetBytes($"job{i}"));
        }

        GroupSnapshot Group() => b.GetSnapshot().Groups.Single(g => g.Group == "g");

        // A consumer that flaps: joins, is assigned its prefetch, goes before taking anything; more times than
        // MaxDeliveries leaving gracefully, then as if crashed.
        for (var flap = 0; flap < MaxDeliveries + 3; flap++)
        {
            var member = b.JoinGroup("flaps", "g", options);
            await Eventually.TrueAsync(() => Group().InFlight == Prefetch || Group().DeadLettered > 0, $"flap {flap}: the prefetch is assigned to the member");
            Assert.Equal(0, Group().DeadLettered);
            if (flap <= MaxDeliveries)
            {
                member.Dispose();
            }
            else
            {
                member.Abandon(); // nothing was handed over: nothing waits for the visibility timeout
            }

            await Eventually.TrueAsync(() => Group().InFlight == 0, $"flap {flap}: the member's assignments are back");
            Assert.Equal(0, Group().DeadLettered);
        }

        Assert.Equal(0, Group().DeadLettered);
        using var next = b.JoinGroup("flaps", "g", options);
        var got = FetchMany(next, Prefetch, "the next member gets every message");
        Assert.Equal(["job0", "job1", "job2"], got.Select(x => x.Payload));
        Assert.All(got, x => Assert.Equal(1, x.DeliveryCount));

        // Of what was handed over, the first (the one a consumer works on first) counts: it comes again as the second
        // delivery; the two behind it were not started, and come again as the first (WorkQueueLeaveCountTests).
        next.Dispose();
        using var last = b.JoinGroup("flaps", "g", options);
        var again = FetchMany(last, Prefetch, "redelivered after the graceful leave");
        Assert.Equal([("job0", 2), ("job1", 1), ("job2", 1)], again.Select(x => (x.Payload, x.DeliveryCount)).OrderBy(x => x.Payload));
        foreach (var x in again)
        {
            Assert.True(last.Ack(x.Offset, x.DeliveryCount));
        }

        Assert.Equal(0, Group().DeadLettered);
        Assert.Equal(Prefetch, Group().Acked);
    }

    [Fact]
    public async Task A_delivery_whose_visibility_timeout_passes_while_its_member_does_not_fetch_uses_up_no_delivery()
    {
        // The stuck member's timeouts are what the test waits for; the live member acks each delivery as soon as it has
        // it, but a loaded machine may hold the test up between its fetch and its ack past the same 3 s timeout: that
        // ack is refused and, with one attempt, the delivery is dead-lettered without a defect. Such a round proves
        // nothing either way and is run again, up to three times.
        for (var round = 1; round <= 3; round++)
        {
            if (await RunTimeoutRoundAsync())
            {
                return;
            }
        }

        Assert.Fail("each of 3 rounds had the live member's ack of a delivery it fetched refused (its timeout passed first)");
    }

    /// <summary>
    /// One round of <see cref="A_delivery_whose_visibility_timeout_passes_while_its_member_does_not_fetch_uses_up_no_delivery"/>
    /// on a broker of its own: false when the live member's ack of a delivery it fetched was refused (the timeout passed
    /// between the two), true when every ack was taken and the round's checks passed.
    /// </summary>
    private static async Task<bool> RunTimeoutRoundAsync()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        const int N = 3;

        // One attempt each: a timeout that counted would dead-letter the message at once.
        var options = GroupOptions.Default with { Prefetch = N, MaxDeliveries = 1, VisibilityTimeout = TimeSpan.FromSeconds(3) };
        for (var i = 0; i < N; i++)
        {
            await b.PublishAsync("slow", Encoding.UTF8.GetBytes($"job{i}"));
        }

        GroupSnapshot Group() => b.GetSnapshot().Groups.Single(g => g.Group == "g");

        // A member whose consumer never fetches (stuck, or its connection's writer blocked) is assigned everything...
        using var stuck = b.JoinGroup("slow", "g", options);
        await Eventually.TrueAsync(() => Group().InFlight == N || Group().DeadLettered > 0, "the stuck member is assigned the messages");

        // ...and a live one gets them once their visibility timeouts pass, as first deliveries: nobody saw them before.
        using var live = b.JoinGroup("slow", "g", options);
        var got = new Collected();
        var acked = 0;
        var refused = 0;
        await Eventually.TrueAsync(() =>
        {
            var r = new Recorder(got);
            live.Fetch(N, ref r);
            for (; acked < got.Items.Count; acked++)
            {
                var x = got.Items[acked];
                refused += live.Ack(x.Offset, x.DeliveryCount) ? 0 : 1;
            }

            return got.Items.Count >= N || Group().DeadLettered > 0;
        }, "the live member gets every message (or the stuck member's timeouts dead-letter them)");
        if (refused > 0)
        {
            return false; // the live member's own ack came after the timeout: load, not the stuck member's timeouts
        }

        Assert.Equal(0, Group().DeadLettered);
        Assert.Equal(["job0", "job1", "job2"], got.Items.Select(x => x.Payload).Order());
        Assert.All(got.Items, x => Assert.Equal(1, x.DeliveryCount));
        Assert.Equal(0, Group().Redelivered);
        return true;
    }

    [Fact]
    public async Task A_delivery_given_back_uses_up_no_attempt_and_one_passed_to_a_throwing_handler_does()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        var options = GroupOptions.Default with { Prefetch = 1, MaxDeliveries = 1, VisibilityTimeout = TimeSpan.FromMinutes(10) };
        await b.PublishAsync("back", Encoding.UTF8.GetBytes("job"));
        GroupSnapshot Group() => b.GetSnapshot().Groups.Single(g => g.Group == "g");

        // Fetched but not passed on (the server: never written to the connection): given back, no attempt, so the one
        // attempt MaxDeliveries allows is still there.
        using var m = b.JoinGroup("back", "g", options);
        for (var round = 0; round < 3; round++)
        {
            var x = FetchOne(m, $"round {round}: the job comes (again)");
            Assert.Equal(1, x.DeliveryCount);
            Assert.True(m.GiveBack(x.Offset, x.DeliveryCount));
            Assert.False(m.GiveBack(x.Offset, x.DeliveryCount), "given back once");
        }

        Assert.Equal(0, Group().DeadLettered);

        // A handler that throws did receive the message: an attempt, the last one, so leaving dead-letters it.
        await Eventually.TrueAsync(() => Group().InFlight == 1, "the job is assigned again");
        var thrower = new Thrower();
        Assert.Throws<InvalidOperationException>(() => m.Fetch(1, ref thrower));
        m.Dispose();
        await Eventually.TrueAsync(() => Group().DeadLettered == 1, "the job received by the throwing handler is dead-lettered");
    }

    private struct Thrower : IMessageHandler
    {
        public readonly void OnMessage(scoped in MessageView message) => throw new InvalidOperationException("handler failed");
    }

    [Fact]
    public async Task The_visibility_timeout_of_a_fetched_delivery_counts_from_its_fetch_not_from_its_assignment()
    {
        // A loaded machine may hold the test up between its fetch and its ack past the whole timeout: such a round
        // proves nothing either way and is run again, up to three times.
        for (var round = 1; round <= 3; round++)
        {
            if (await RunLeaseRoundAsync())
            {
                return;
            }
        }

        Assert.Fail("each of 3 rounds took longer than the visibility timeout from the fetch to the ack");
    }

    /// <summary>
    /// One round of <see cref="The_visibility_timeout_of_a_fetched_delivery_counts_from_its_fetch_not_from_its_assignment"/>:
    /// false when the ack came more than the timeout after the fetch (load), true when the round's checks passed.
    /// </summary>
    private static async Task<bool> RunLeaseRoundAsync()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        var timeout = TimeSpan.FromSeconds(4);
        var options = GroupOptions.Default with { Prefetch = 1, VisibilityTimeout = timeout };
        using var member = b.JoinGroup("lease", "g", options);
        await b.PublishAsync("lease", Encoding.UTF8.GetBytes("job"));
        GroupSnapshot Group() => b.GetSnapshot().Groups.Single(g => g.Group == "g");

        // The group assigns the message to the member at once; its consumer fetches it 3 s later (an in-process
        // consumer busy with its previous message, say) and works on it for 1.5 s: within the timeout from the fetch,
        // past it from the assignment. Before, the timeout ran from the assignment, so the message was taken back
        // 1 s into the work (redelivered, its ack refused): a consumer well within its timeout lost the message.
        await Eventually.TrueAsync(() => Group().InFlight == 1, "the message is assigned to the member");
        var sinceAssigned = Stopwatch.StartNew();
        await Eventually.TrueAsync(() => sinceAssigned.Elapsed >= TimeSpan.FromSeconds(3), "3 s pass before the fetch", TimeSpan.FromSeconds(30));
        var got = new Collected();
        var r = new Recorder(got);
        Assert.Equal(1, member.Fetch(1, ref r));
        var sinceFetched = Stopwatch.StartNew();
        await Eventually.TrueAsync(() => sinceFetched.Elapsed >= TimeSpan.FromSeconds(1.5), "1.5 s of work pass", TimeSpan.FromSeconds(30));
        var redelivered = Group().Redelivered;
        var acked = member.Ack(got.Items[0].Offset, got.Items[0].DeliveryCount);
        if (sinceFetched.Elapsed >= timeout)
        {
            return false;
        }

        Assert.Equal(0, redelivered);
        Assert.True(acked, "the member's ack within the timeout from its fetch is taken");
        Assert.Equal(1, Group().AckFloor);
        return true;
    }
}
