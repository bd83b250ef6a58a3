using System.Text;
using FastBroker.Protocol;
using FastBroker.Testing;

namespace FastBroker.ServerTests;

public class WorkQueueTests
{
    [Fact]
    public async Task Two_members_share_the_work_and_acks_complete_it()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var a = await f.ConnectAsync();
        await using var b = await f.ConnectAsync(ProtocolFeatures.WorkQueues);
        await a.SendAsync(w => FrameWriter.WriteJoinGroup(w, 1, 11, "workers"u8, "jobs"u8, 4));
        Assert.Equal(FrameType.Ok, (await a.ReadAsync()).Type);
        await b.SendAsync(w => FrameWriter.WriteJoinGroup(w, 1, 22, "workers"u8, "jobs"u8, 4));
        Assert.Equal(FrameType.Ok, (await b.ReadAsync()).Type);

        const int N = 40;
        for (var i = 0; i < N; i++)
        {
            await f.Broker.PublishAsync("jobs", Encoding.UTF8.GetBytes($"j{i}"));
        }

        // Each member holds at most its prefetch unacked: read one, ack it, until all N are done between the two.
        var seen = new List<Delivery>();
        var pending = new Dictionary<RawConnection, Task<ServerFrame>> { [a] = a.ReadAsync(), [b] = b.ReadAsync() };
        while (seen.Count < N)
        {
            var done = await Task.WhenAny(pending.Values);
            var conn = pending.First(p => p.Value == done).Key;
            var frame = await done;
            Assert.True(frame.Type is FrameType.Deliver or FrameType.DeliverBatch, $"unexpected {frame}");
            seen.AddRange(frame.Deliveries);
            var member = conn == a ? 11u : 22u;
            Assert.All(frame.Deliveries, d => Assert.Equal((member, 1u), (d.SubscriptionId, d.DeliveryCount)));
            var tags = frame.Deliveries.Select(d => d.Tag).ToArray();
            await conn.SendAsync(w => FrameWriter.WriteAck(w, 0, member, tags));
            pending[conn] = seen.Count < N ? conn.ReadAsync() : Task.FromResult(frame);
        }

        Assert.Equal(Enumerable.Range(0, N), seen.Select(d => int.Parse(d.Text[1..], System.Globalization.CultureInfo.InvariantCulture)).Order());
        Assert.Contains(seen, d => d.SubscriptionId == 11);
        Assert.Contains(seen, d => d.SubscriptionId == 22);
        Eventually.True(() => f.Broker.GetSnapshot().Groups.Single().Acked == N, "every job acked once");
        Assert.Equal(0, f.Broker.GetSnapshot().Groups.Single().InFlight);
    }

    [Fact]
    public async Task A_member_that_disconnects_without_acking_has_its_messages_redelivered_to_another_the_first_with_count_2()
    {
        await using var f = await ServerFixture.StartAsync();
        for (var i = 0; i < 3; i++)
        {
            await f.Broker.PublishAsync("tasks", Encoding.UTF8.GetBytes($"t{i}"));
        }

        var first = await f.ConnectAsync();
        await first.SendAsync(w => FrameWriter.WriteJoinGroup(w, 1, 1, "g"u8, "tasks"u8, 10));
        Assert.Equal(FrameType.Ok, (await first.ReadAsync()).Type);
        var got = await first.ReadDeliveriesAsync(3);
        Assert.All(got, d => Assert.Equal(1u, d.DeliveryCount));

        await using var second = await f.ConnectAsync();
        await second.SendAsync(w => FrameWriter.WriteJoinGroup(w, 1, 2, "g"u8, "tasks"u8, 10));
        Assert.Equal(FrameType.Ok, (await second.ReadAsync()).Type);
        await first.DisposeAsync();

        // The first one it was written, which it was working on, used up an attempt; the two behind it did not.
        var again = (await second.ReadDeliveriesAsync(3)).OrderBy(d => d.Offset).ToList();
        Assert.Equal([("t0", 2u), ("t1", 1u), ("t2", 1u)], again.Select(d => (d.Text, d.DeliveryCount)));
        Assert.All(again, d => Assert.Equal(2u, d.SubscriptionId));

        // A stale tag (t0's delivery 1) is refused; the good tags of the same ACK still count.
        var tags = again.Select(d => d.Tag).Append(new DeliveryTag(again[0].Offset, 1)).ToArray();
        await second.SendAsync(w => FrameWriter.WriteAck(w, 5, 2, tags));
        var error = await second.ReadAsync();
        Assert.Equal((FrameType.Error, ErrorCode.UnknownDelivery, 5UL, false), (error.Type, error.ErrorCode, error.RequestId, error.CloseConnection));
        Eventually.True(() => f.Broker.GetSnapshot().Groups.Single().Acked == 3, "the three current tags were acked");
    }

    /// <summary>
    /// A message too large for a member's connection (its maxInboundFrameSize) ends the membership. What its fetch took
    /// after it was never written, so those come back with their count restored. Of what was written before it, the
    /// first counts, as when any member leaves (MemberLossTests), and so does the too-large message itself, nacked: a
    /// member with that limit can never take it, so it must use up its deliveries and reach the dead-letter topic rather
    /// than end every such membership for ever. Before, the ones behind it came back as delivery 2 too (and with
    /// maxDeliveries 1 were dead-lettered) although the client never got them.
    /// </summary>
    [Fact]
    public async Task A_delivery_too_large_for_the_members_connection_and_those_behind_it_are_no_attempt()
    {
        await using var f = await ServerFixture.StartAsync();
        string[] jobs = ["s0", "s1", "big", "s3", "s4"];
        foreach (var job in jobs)
        {
            await f.Broker.PublishAsync("mixed", job == "big" ? new byte[4000] : Encoding.UTF8.GetBytes(job));
        }

        await using (var small = await f.ConnectAsync(maxInboundFrameSize: 2048))
        {
            await small.SendAsync(w => FrameWriter.WriteJoinGroup(w, 1, 1, "g"u8, "mixed"u8, 10, maxDeliveries: 2));
            Assert.Equal(FrameType.Ok, (await small.ReadAsync()).Type);
            var others = new List<ServerFrame>();
            var written = await small.ReadDeliveriesAsync(2, others);
            Assert.Equal(["s0", "s1"], written.Select(d => d.Text));
            var error = others.Count > 0 ? others[0] : await small.ReadAsync();
            Assert.Equal((ErrorCode.MessageTooLarge, 1u, true), (error.ErrorCode, error.ErrorSubscriptionId, error.SubscriptionEnded));
        }

        await Eventually.TrueAsync(() => f.Broker.GetSnapshot().Groups.Single() is { Members: 0, InFlight: 0 }, "the ended member's deliveries are back");
        await using var large = await f.ConnectAsync();
        await large.SendAsync(w => FrameWriter.WriteJoinGroup(w, 1, 2, "g"u8, "mixed"u8, 10, maxDeliveries: 2));
        Assert.Equal(FrameType.Ok, (await large.ReadAsync()).Type);
        var again = (await large.ReadDeliveriesAsync(jobs.Length)).OrderBy(d => d.Offset).ToList();
        Assert.Equal(
            [(0ul, 2u), (1ul, 1u), (2ul, 2u), (3ul, 1u), (4ul, 1u)],
            again.Select(d => (d.Offset, d.DeliveryCount)));
        Assert.Equal(0, f.Broker.GetSnapshot().Groups.Single().DeadLettered);
    }

    /// <summary>
    /// A member's deliveries count once the server has written them to its connection. The connection here reads one
    /// frame and stops, with both socket buffers at 4 KiB: the server's writer takes 256 deliveries in its first pass
    /// (its most per membership) and blocks in the flush, the rest of the prefetch stays assigned but unwritten. When
    /// the connection goes, those come back with their delivery count restored (before, all came back as delivery 2,
    /// and a consumer flapping like this dead-lettered them unseen).
    /// </summary>
    [Fact]
    public async Task Deliveries_never_written_to_a_lost_connection_come_back_with_their_count_restored()
    {
        await using var f = await ServerFixture.StartAsync();
        const int N = 300;
        var payload = new byte[16 * 1024]; // 4 MiB in the first pass: far more than the two socket buffers hold
        for (var i = 0; i < N; i++)
        {
            await f.Broker.PublishAsync("big-jobs", payload);
        }

        var first = await f.ConnectAsync(receiveBufferSize: 4096);
        f.Server.Sessions.Single().Socket.SendBufferSize = 4096;
        await first.SendAsync(w => FrameWriter.WriteJoinGroup(w, 1, 1, "g"u8, "big-jobs"u8, N, maxDeliveries: 2));
        Assert.Equal(FrameType.Ok, (await first.ReadAsync()).Type);
        var received = await first.ReadDeliveriesAsync(1);
        await Eventually.TrueAsync(() => f.Broker.GetSnapshot().Groups.Single().InFlight == N, "the whole prefetch is assigned");
        await first.DisposeAsync();
        await Eventually.TrueAsync(() => f.Broker.GetSnapshot().Groups.Single() is { Members: 0, InFlight: 0 }, "the lost member's deliveries are back");

        await using var second = await f.ConnectAsync();
        await second.SendAsync(w => FrameWriter.WriteJoinGroup(w, 1, 2, "g"u8, "big-jobs"u8, N, maxDeliveries: 2));
        Assert.Equal(FrameType.Ok, (await second.ReadAsync()).Type);
        var again = (await second.ReadDeliveriesAsync(N)).OrderBy(d => d.Offset).ToList();
        Assert.Equal(Enumerable.Range(0, N).Select(i => (ulong)i), again.Select(d => d.Offset));

        // Written in offset order: a prefix (at least what was read) went out and counts, the rest never did.
        var written = again.Count(d => d.DeliveryCount == 2);
        Assert.InRange(written, received.Count, N - 1);
        Assert.All(again.Take(written), d => Assert.Equal(2u, d.DeliveryCount));
        Assert.All(again.Skip(written), d => Assert.Equal(1u, d.DeliveryCount));
        Assert.Equal(0, f.Broker.GetSnapshot().Groups.Single().DeadLettered);
    }

    [Fact]
    public async Task A_nack_without_requeue_dead_letters_with_the_error_text()
    {
        await using var f = await ServerFixture.StartAsync();
        await f.Broker.PublishAsync("orders", "poison"u8.ToArray());
        await using var dlq = await f.ConnectAsync();
        await dlq.SubscribeAsync(1, 1, "orders.dlq", 10, Protocol.StartKind.Earliest);
        Assert.Equal(FrameType.Ok, (await dlq.ReadAsync()).Type);

        await using var worker = await f.ConnectAsync();
        await worker.SendAsync(w => FrameWriter.WriteJoinGroup(w, 1, 3, "g"u8, "orders"u8, 1));
        Assert.Equal(FrameType.Ok, (await worker.ReadAsync()).Type);
        var d = (await worker.ReadDeliveriesAsync(1)).Single();
        await worker.SendAsync(w => FrameWriter.WriteNack(w, 2, 3, d.Tag, requeue: false, errorText: "cannot parse"u8));

        var dead = (await dlq.ReadDeliveriesAsync(1)).Single();
        Assert.Equal("poison", dead.Text);
        Assert.Equal("cannot parse", Headers.Get(dead.Headers, "fb-dlq-error"));
        Assert.Equal("g", Headers.Get(dead.Headers, "fb-dlq-group"));

        await worker.SendAsync(w => FrameWriter.WriteNack(w, 3, 3, d.Tag, requeue: true));
        var stale = await worker.ReadAsync();
        Assert.Equal((ErrorCode.UnknownDelivery, 3UL), (stale.ErrorCode, stale.RequestId));
    }

    [Fact]
    public async Task Credit_on_a_membership_raises_its_prefetch()
    {
        await using var f = await ServerFixture.StartAsync();
        for (var i = 0; i < 3; i++)
        {
            await f.Broker.PublishAsync("p", Encoding.UTF8.GetBytes($"p{i}"));
        }

        await using var c = await f.ConnectAsync();
        await c.SendAsync(w => FrameWriter.WriteJoinGroup(w, 1, 1, "g"u8, "p"u8, 1));
        Assert.Equal(FrameType.Ok, (await c.ReadAsync()).Type);
        Assert.Single(await c.ReadDeliveriesAsync(1));
        Assert.Single(await c.RoundTripAsync());
        Assert.Equal(1, f.Broker.GetSnapshot().Groups.Single().InFlight);

        await c.SendAsync(w => FrameWriter.WriteCredit(w, 0, 1, 2));
        Assert.Equal(2, (await c.ReadDeliveriesAsync(2)).Count);
    }

    [Fact]
    public async Task Ack_for_a_subscription_that_is_not_a_membership_is_refused()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var c = await f.ConnectAsync();
        await c.SubscribeAsync(1, 1, "plain", 1);
        Assert.Equal(FrameType.Ok, (await c.ReadAsync()).Type);
        await c.SendAsync(w => FrameWriter.WriteAck(w, 2, 1, new DeliveryTag(0, 1)));
        Assert.Equal(ErrorCode.UnknownSubscription, (await c.ReadAsync()).ErrorCode);
        await c.SendAsync(w => FrameWriter.WriteAck(w, 3, 9, new DeliveryTag(0, 1)));
        Assert.Equal(ErrorCode.UnknownSubscription, (await c.ReadAsync()).ErrorCode);
    }

    /// <summary>
    /// A group whose state file is not a group's (here a wrong magic) cannot be joined over the wire either: the client
    /// gets STORAGE_ERROR with the file, the reason and what to do, not INVALID_ARGUMENT with a bare exception message,
    /// and its connection and the broker go on serving.
    /// </summary>
    [Fact]
    public async Task Joining_a_group_whose_state_file_is_damaged_answers_a_storage_error_naming_the_file()
    {
        await using var f = await ServerFixture.StartAsync();
        await f.Broker.PublishAsync("jobs", "j0"u8.ToArray());
        await using (var first = await f.ConnectAsync())
        {
            await first.SendAsync(w => FrameWriter.WriteJoinGroup(w, 1, 1, "workers"u8, "jobs"u8, 4));
            Assert.Equal(FrameType.Ok, (await first.ReadAsync()).Type);
        }

        var path = Path.Combine(f.DataDirectory, "topics", "jobs", "groups", "workers.state");
        await f.RestartAsync(whileClosed: () =>
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Write);
            file.Write("NOTSTATE"u8);
        });

        await using var c = await f.ConnectAsync();
        await c.SendAsync(w => FrameWriter.WriteJoinGroup(w, 7, 1, "workers"u8, "jobs"u8, 4));
        var error = await c.ReadAsync();
        Assert.True(
            error.Type == FrameType.Error && error.ErrorCode == ErrorCode.StorageError && error.RequestId == 7 && !error.CloseConnection
            && error.ErrorReason.Contains(path, StringComparison.Ordinal) && error.ErrorReason.Contains("magic 0x", StringComparison.Ordinal) && error.ErrorReason.Contains("repair the file, or remove it", StringComparison.Ordinal),
            $"expected ERROR#7 StorageError naming {path}, its magic and what to do, got: {error}");

        // The same connection joins another group of the topic and is served.
        await c.SendAsync(w => FrameWriter.WriteJoinGroup(w, 8, 2, "others"u8, "jobs"u8, 4));
        var ok = await c.ReadAsync();
        Assert.Equal((FrameType.Ok, 8UL), (ok.Type, ok.RequestId));
        Assert.Equal(["j0"], (await c.ReadDeliveriesAsync(1)).Select(d => d.Text));
    }
}
