using System.Collections.Concurrent;
using FastBroker.Replication;
using FastBroker.Replication.Internal;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// Once a link is ended (its sender finds the standby gone) or replaced (the standby says HELLO again), nothing of it
/// is credited: an ACK its ack reader read just before cannot credit the confirmations after the newer link reset the
/// topic's standby positions (with the positions of the standby the old link was to). The old link's credit is held
/// in <see cref="PrimaryReplicator.AckCrediting"/> until the newer link's <see cref="PrimaryReplicator.PositionsReset"/>
/// ran, or until the replicator waits for the old link's ack lock (<see cref="PrimaryReplicator.AckLockWaiting"/>),
/// whichever comes first; then the newer link's standby acknowledges part of what it was sent, and the topic's
/// positions are exactly that, the publish held waiting for the rest. A stand-in standby on 127.0.0.1 plays both links.
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class EndedLinkCreditTests
{
    private const string Topic = "orders.churn";

    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(30);

    [Theory]
    [InlineData("replaced")]
    [InlineData("ended")]
    public async Task An_ack_read_by_a_link_that_is_over_credits_nothing_after_the_newer_link_reset_the_positions(string how)
    {
        using var dir = new TempDirectory();
        var lines = new ConcurrentQueue<string>();
        // Standby-received topics, every ACK read by the ack reader, a publish held for an ACK held for the whole test.
        await using var node = await StandInStandby.StartPrimaryAsync(dir, lines, journalerReads: false);
        Assert.True(await node.WaitForRoleAsync(NodeRole.Primary, s_deadline), "a becomes primary");

        // The first link confirms m0 with its standby's ACK.
        using var first = StandInStandby.Attach(node, out var firstInput);
        var old = node.Replicator!.Link!;
        var m0 = node.Broker!.PublishAsync(Topic, "m0"u8.ToArray()).AsTask();
        var firstId = StandInStandby.ReadUntilShipped(firstInput, Topic, null, 1).Id;
        var f = new FrameBuffer(256);
        f.Begin(FrameKind.Ack).U32(1).U32(firstId).I64(1).I64(1).End();
        f.SendTo(first);
        Assert.Equal(0, await Eventually.Completes(m0, s_deadline));
        var held = node.Broker.PublishAsync(Topic, "m1"u8.ToArray()).AsTask(); // offset 1: waits for b's ACK
        StandInStandby.ReadUntilShipped(firstInput, Topic, firstId, 2);
        Assert.False(held.IsCompleted, "m1 waits for the standby's ACK");

        using var crediting = new ManualResetEventSlim();
        using var letGo = new ManualResetEventSlim();
        using var resetByNewer = new ManualResetEventSlim();
        using var oldLockWaited = new ManualResetEventSlim();
        var letGoAfterReset = false;
        node.Replicator.PositionsReset = (link, topic) =>
        {
            if (!ReferenceEquals(link, old) && topic.Name == Topic)
            {
                resetByNewer.Set();
            }
        };
        node.Replicator.AckLockWaiting = link =>
        {
            if (ReferenceEquals(link, old))
            {
                oldLockWaited.Set();
            }
        };
        node.Replicator.AckCrediting = (link, topic) =>
        {
            if (!ReferenceEquals(link, old) || topic.Name != Topic || crediting.IsSet)
            {
                return;
            }

            crediting.Set();
            WaitHandle.WaitAny([resetByNewer.WaitHandle, oldLockWaited.WaitHandle], s_deadline);
            letGoAfterReset = resetByNewer.IsSet;
            letGo.Set();
        };

        // The old standby acknowledges m1; its ack reader holds the credit.
        f.Begin(FrameKind.Ack).U32(1).U32(firstId).I64(2).I64(2).End();
        f.SendTo(first);
        Assert.True(crediting.Wait(s_deadline), "the old link's ack reader is about to credit the ACK");
        if (how == "ended")
        {
            first.Dispose(); // the sender's next heartbeat finds the connection gone and ends the link
            Assert.True(
                Eventually.TryWait(() => node.Replicator.Link is null, s_deadline),
                $"a reports the old link's end within {s_deadline.TotalSeconds} s: [{string.Join(" | ", lines)}]");
        }

        // A newer link (the standby again, holding nothing: it starts the topic at 0) resets the positions.
        using var second = StandInStandby.Attach(node, out var secondInput);
        Assert.True(resetByNewer.Wait(s_deadline), "the newer link resets the topic's positions");
        Assert.True(letGo.Wait(s_deadline), "the old link's credit is let go");
        var newer = node.Replicator.Link;
        Assert.True(newer is not null && !ReferenceEquals(newer, old), "the newer link is the replicator's");
        var (secondId, shipped) = StandInStandby.ReadUntilShipped(secondInput, Topic, null, 1);

        // The newer standby acknowledges m0 only: the positions are its, m1 still held.
        f.Begin(FrameKind.Ack).U32(1).U32(secondId).I64(1).I64(1).End();
        f.SendTo(second);
        Assert.True(Eventually.TryWait(() => newer.AcksReceived >= 1, s_deadline), "a reads the newer standby's ACK");
        var positions = newer.Positions.Single(p => p.Topic == Topic);
        Assert.True(
            positions is { Received: 1, Durable: 1 } && !held.IsCompleted && !letGoAfterReset,
            $"'{Topic}' at the newer standby's ACK (1, 1), m1 held: received {positions.Received}, durable {positions.Durable}, m1 {(held.IsCompleted ? "confirmed" : "held")}; "
            + $"the old link's ACK (2, 2) was {(letGoAfterReset ? "let go after the newer link reset the positions" : "let go before the reset")}");

        // The newer standby acknowledges m1: confirmed by it.
        if (shipped < 2)
        {
            StandInStandby.ReadUntilShipped(secondInput, Topic, secondId, 2);
        }

        f.Begin(FrameKind.Ack).U32(1).U32(secondId).I64(2).I64(2).End();
        f.SendTo(second);
        Assert.Equal(1, await Eventually.Completes(held, s_deadline));
        first.Dispose();
    }
}
