using System.Text;
using FastBroker.Protocol;
using FastBroker.Testing;

namespace FastBroker.ServerTests;

/// <summary>
/// A work-queue member lost over TCP (its socket closed, or reset as when its process dies) or late with its ACK: what
/// its deliveries become, with which delivery count.
/// </summary>
public class MemberLossTests
{
    // Ten minutes: far longer than any wait of these tests (RawConnection.ReadTimeout, 30 s), so a redelivery they see
    // came from the member's loss, not from its visibility timeout.
    private const uint LongVisibilityMs = 600_000;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_lost_members_deliveries_go_to_another_at_once_and_only_the_one_it_was_working_on_counts(bool reset)
    {
        await using var f = await ServerFixture.StartAsync();
        for (var i = 0; i < 3; i++)
        {
            await f.Broker.PublishAsync("tasks", Encoding.UTF8.GetBytes($"t{i}"));
        }

        // Offset 0 is delivered twice to the first member (a NACK with requeue), the others once.
        await using var first = await f.ConnectAsync();
        await first.SendAsync(w => FrameWriter.WriteJoinGroup(w, 1, 1, "g"u8, "tasks"u8, 3, LongVisibilityMs));
        Assert.Equal(FrameType.Ok, (await first.ReadAsync()).Type);
        var got = await first.ReadDeliveriesAsync(3);
        Assert.All(got, d => Assert.Equal(1u, d.DeliveryCount));
        await first.SendAsync(w => FrameWriter.WriteNack(w, 2, 1, new DeliveryTag(0, 1), requeue: true));
        var redelivered = (await first.ReadDeliveriesAsync(1)).Single();
        Assert.Equal((0ul, 2u), (redelivered.Offset, redelivered.DeliveryCount));

        await using var second = await f.ConnectAsync();
        await second.SendAsync(w => FrameWriter.WriteJoinGroup(w, 1, 2, "g"u8, "tasks"u8, 3, LongVisibilityMs));
        Assert.Equal(FrameType.Ok, (await second.ReadAsync()).Type);
        if (reset)
        {
            first.Reset();
        }
        else
        {
            await first.DisposeAsync();
        }

        // Only the first delivery the lost member was handed and had not settled (offset 1: it was working on it, as a
        // consumer takes its deliveries in order) used up an attempt; offset 0's redelivery and offset 2 were still
        // waiting behind it, so they come with the count they had (WorkQueueLeaveCountTests).
        var again = (await second.ReadDeliveriesAsync(3)).OrderBy(d => d.Offset).ToList();
        Assert.Equal([(0ul, 2u, "t0"), (1ul, 2u, "t1"), (2ul, 1u, "t2")], again.Select(d => (d.Offset, d.DeliveryCount, d.Text)));
        await second.SendAsync(w => FrameWriter.WriteAck(w, 3, 2, again.Select(d => d.Tag).ToArray()));
        await Eventually.TrueAsync(() => f.Broker.GetSnapshot().Groups.Single() is { Members: 1, Acked: 3, InFlight: 0, Ready: 0, DeadLettered: 0 }, "the three acked by the second member");
    }

    /// <summary>
    /// Consumers with a prefetch of 20 lost one after another (their sockets reset, as when a deploy kills them) before
    /// acking anything, with maxDeliveries 1: each loss dead-letters the one message its consumer was working on, not
    /// its whole prefetch (before: all 20 at the first loss, though nobody had tried 19 of them).
    /// </summary>
    [Fact]
    public async Task Members_lost_one_after_another_dead_letter_only_the_message_each_was_working_on()
    {
        const int Messages = 20;
        const int Losses = 3;
        await using var f = await ServerFixture.StartAsync();
        for (var i = 0; i < Messages; i++)
        {
            await f.Broker.PublishAsync("jobs", Encoding.UTF8.GetBytes($"j{i}"));
        }

        GroupSnapshot Group() => f.Broker.GetSnapshot().Groups.Single(g => g.Group == "g");
        for (var loss = 1; loss <= Losses; loss++)
        {
            var lost = await f.ConnectAsync();
            await lost.SendAsync(w => FrameWriter.WriteJoinGroup(w, 1, 1, "g"u8, "jobs"u8, Messages, LongVisibilityMs, maxDeliveries: 1));
            Assert.Equal(FrameType.Ok, (await lost.ReadAsync()).Type);
            var got = await lost.ReadDeliveriesAsync(Messages - loss + 1);
            Assert.All(got, d => Assert.Equal(1u, d.DeliveryCount));
            lost.Reset();
            await lost.DisposeAsync();
            var expected = loss;
            await Eventually.TrueAsync(() => Group() is { Members: 0, InFlight: 0 } g && g.DeadLettered >= expected, $"loss {loss}: the lost member's deliveries are back");
            Assert.Equal(loss, Group().DeadLettered);
        }

        await using var last = await f.ConnectAsync();
        await last.SendAsync(w => FrameWriter.WriteJoinGroup(w, 1, 1, "g"u8, "jobs"u8, Messages, LongVisibilityMs, maxDeliveries: 1));
        Assert.Equal(FrameType.Ok, (await last.ReadAsync()).Type);
        var rest = await last.ReadDeliveriesAsync(Messages - Losses);
        Assert.All(rest, d => Assert.Equal(1u, d.DeliveryCount));
        await last.SendAsync(w => FrameWriter.WriteAck(w, 2, 1, rest.Select(d => d.Tag).ToArray()));
        await Eventually.TrueAsync(() => Group() is { Acked: Messages - Losses, DeadLettered: Losses, InFlight: 0, Ready: 0 }, "the rest acked by the last member");
    }

    /// <summary>
    /// A member's client that is done sending (TCP half-close) can ACK nothing more: its deliveries go to another member
    /// as soon as the server reads the end of its stream, while the session still waits to confirm the client's last
    /// publish (held unconfirmed behind a slot of the input ring that the test keeps claimed), not after that wait (up to
    /// 5 s). Shown by order, not by time: the other member has the message before the hold is let go, and the half-closed
    /// client still gets its publish confirmed after that, so its session was still draining when the message moved.
    /// </summary>
    [Fact]
    public async Task A_half_closed_members_deliveries_go_to_another_while_its_last_publishes_are_still_being_confirmed()
    {
        await using var f = await ServerFixture.StartAsync();
        await f.Broker.PublishAsync("tasks", "t0"u8.ToArray());
        await using var a = await f.ConnectAsync();
        await a.SendAsync(w => FrameWriter.WriteJoinGroup(w, 1, 1, "g"u8, "tasks"u8, 1, LongVisibilityMs));
        Assert.Equal(FrameType.Ok, (await a.ReadAsync()).Type);
        Assert.Equal((0ul, 1u), (await a.ReadDeliveriesAsync(1)).Select(d => (d.Offset, d.DeliveryCount)).Single());

        using var held = new HeldSlot(f.Broker, "tasks", "held");
        await a.PublishAsync(5, "tasks", "last");
        await Eventually.TrueAsync(() => f.Broker.Ring.Cursor >= held.Sequence + 1, "a's publish is claimed behind the held slot");
        a.ShutdownSend();

        await using var b = await f.ConnectAsync();
        await b.SendAsync(w => FrameWriter.WriteJoinGroup(w, 1, 2, "g"u8, "tasks"u8, 1, LongVisibilityMs));
        Assert.Equal(FrameType.Ok, (await b.ReadAsync()).Type);
        var toB = (await b.ReadDeliveriesAsync(1)).Single();
        Assert.Equal((0ul, 2u, "t0"), (toB.Offset, toB.DeliveryCount, toB.Text));

        held.Release();
        Assert.Null(held.Error);
        var last = await a.ReadUntilClosedAsync();
        Assert.True(
            last.Any(x => x.Type == FrameType.Confirm && x.Ranges.Any(r => r.FirstRequestId == 5 && r.Status == ErrorCode.None)),
            $"the half-closed client's publish was not confirmed after the other member got its delivery: its session had closed before the delivery moved; got {string.Join(" | ", last)}");
    }

    /// <summary>
    /// The first member's delivery times out and goes to the second; the first's ACK then arrives: refused, and it does
    /// not take the message from the second, whose loss still brings it back (to the first, its next delivery). After
    /// the message is acked, the first's NACK of its old delivery is refused too: nothing is requeued or dead-lettered.
    /// </summary>
    [Fact]
    public async Task A_late_ack_after_the_visibility_timeout_leaves_the_redelivery_with_its_member_and_a_late_nack_after_the_ack_changes_nothing()
    {
        await using var f = await ServerFixture.StartAsync();
        await f.Broker.PublishAsync("slow", "m"u8.ToArray());
        await using var a = await f.ConnectAsync();
        await using var b = await f.ConnectAsync();
        await a.SendAsync(w => FrameWriter.WriteJoinGroup(w, 1, 1, "g"u8, "slow"u8, 1, visibilityTimeoutMs: 300, maxDeliveries: 100));
        Assert.Equal(FrameType.Ok, (await a.ReadAsync()).Type);
        var toA = (await a.ReadDeliveriesAsync(1)).Single();
        Assert.Equal(1u, toA.DeliveryCount);

        await b.SendAsync(w => FrameWriter.WriteJoinGroup(w, 1, 2, "g"u8, "slow"u8, 1));
        Assert.Equal(FrameType.Ok, (await b.ReadAsync()).Type);

        // After a's visibility timeout: delivery 2, or later if it went back to a first (b joined after the timeout:
        // a then has it as delivery 2 unread in its socket, a stale copy once that times out too).
        var toB = (await b.ReadDeliveriesAsync(1)).Single();
        Assert.True(toB.Offset == 0 && toB.DeliveryCount >= 2, $"expected offset 0 as delivery 2 or later, got {toB}");

        // Frames a reads besides the ones awaited (the message may come back to it while its ACK is on the way).
        var frames = new Queue<ServerFrame>();
        await a.SendAsync(w => FrameWriter.WriteAck(w, 7, 1, toA.Tag));
        var refused = await a.ReadUntilAsync(x => x.Type == FrameType.Error && x.RequestId == 7);
        Assert.Equal(ErrorCode.UnknownDelivery, refused[^1].ErrorCode);
        refused.SkipLast(1).ToList().ForEach(frames.Enqueue);
        Assert.Equal(0, f.Broker.GetSnapshot().Groups.Single().Acked);

        // b goes (reset): the message comes back to a, a later delivery than b's (b's may have timed out first). a acks
        // what it gets: a stale copy, or one whose timeout passed before its ACK arrived, is refused and the message
        // comes again, so this ends within a bounded number of rounds.
        b.Reset();
        var last = toA;
        for (var round = 0; round < 50 && f.Broker.GetSnapshot().Groups.Single().Acked == 0; round++)
        {
            var frame = frames.Count > 0 ? frames.Dequeue() : await a.ReadAsync();
            if (frame.Type is FrameType.Deliver or FrameType.DeliverBatch)
            {
                last = frame.Deliveries.Single();
                Assert.Equal(0ul, last.Offset);
                await a.SendAsync(w => FrameWriter.WriteAck(w, 8, 1, last.Tag));
                (await a.RoundTripAsync()).Where(x => x.Type != FrameType.Pong).ToList().ForEach(frames.Enqueue); // the ACK is handled
            }
            else
            {
                Assert.Equal((FrameType.Error, ErrorCode.UnknownDelivery, 8ul), (frame.Type, frame.ErrorCode, frame.RequestId));
            }
        }

        Assert.True(last.DeliveryCount > toB.DeliveryCount, $"acked as {last}, not a later delivery than b's {toB}");
        await Eventually.TrueAsync(() => f.Broker.GetSnapshot().Groups.Single() is { Acked: 1, InFlight: 0, Ready: 0 }, "acked once by a");
        await a.SendAsync(w => FrameWriter.WriteNack(w, 9, 1, toA.Tag, requeue: true));
        var staleNack = await a.ReadAsync();
        Assert.Equal((FrameType.Error, ErrorCode.UnknownDelivery, 9ul), (staleNack.Type, staleNack.ErrorCode, staleNack.RequestId));
        await a.SendAsync(w => FrameWriter.WriteNack(w, 10, 1, last.Tag, requeue: false));
        var lateNack = await a.ReadAsync();
        Assert.Equal((FrameType.Error, ErrorCode.UnknownDelivery, 10ul), (lateNack.Type, lateNack.ErrorCode, lateNack.RequestId));
        Assert.True(f.Broker.GetSnapshot().Groups.Single() is { Acked: 1, DeadLettered: 0, InFlight: 0, Ready: 0, AckFloor: 1 });
    }
}
