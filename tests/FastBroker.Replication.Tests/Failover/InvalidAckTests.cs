using System.Collections.Concurrent;
using FastBroker.Replication;
using FastBroker.Replication.Internal;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// The primary checks every position of a standby's ACK before it credits any: an ACK of a topic id the link never
/// announced, a received position beyond what the link sent, a durable one beyond the received one, or a position
/// behind the topic's last ACK ends the link (<c>replication: standby 'b' disconnected: invalid ACK from the standby:
/// …</c>, no standby attached in <c>/status</c>) and confirms nothing: the standby-received publish held when it came
/// is then confirmed as local (<see cref="ReplicationOptions.DegradeToLocal"/>, counted as degraded), not as replicated.
/// A stand-in standby on 127.0.0.1 says HELLO and STATE_DIGESTS, reads the attach and the records, and sends the ACKs;
/// whichever thread reads them (the ack reader, or the journaler polling: <see cref="ReplicationOptions.AckPoll"/>).
/// </summary>
public sealed class InvalidAckTests
{
    private const string Topic = "orders.acks";

    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(30);

    // For the link's end: past the ack reader's deferral, with the deadline's slack for a loaded machine.
    private static readonly TimeSpan s_endDeadline = TimeSpan.FromSeconds(60);

    [Theory]
    [InlineData("unknown-id", false)]
    [InlineData("unknown-id", true)]
    [InlineData("beyond-sent", false)]
    [InlineData("beyond-sent", true)]
    [InlineData("durable-beyond-received", false)]
    [InlineData("durable-beyond-received", true)]
    [InlineData("received-back", false)]
    [InlineData("durable-back", true)]
    public async Task An_ack_the_link_cannot_have_caused_ends_it_and_confirms_nothing(string ack, bool journalerReads)
    {
        using var dir = new TempDirectory();
        var lines = new ConcurrentQueue<string>();
        await using var node = await StandInStandby.StartPrimaryAsync(dir, lines, journalerReads, degradeToLocal: true);
        Assert.True(await node.WaitForRoleAsync(NodeRole.Primary, s_deadline), "a becomes primary");
        Assert.Equal(0, await node.Broker!.PublishAsync(Topic, "m0"u8.ToArray())); // no standby: local at once

        using var link = StandInStandby.Attach(node, out var input);
        var id = StandInStandby.ReadUntilShipped(input, Topic, null).Id; // m0, the backlog: offsets [0, 1) sent
        await Eventually.TrueAsync(() => NodeStatus.Parse(node.GetStatusJson()).StandbyConfirming, "a confirms with b");
        var degraded = NodeStatus.Parse(node.GetStatusJson()).Standby!.Degraded;
        var held = node.Broker.PublishAsync(Topic, "m1"u8.ToArray()).AsTask(); // offset 1: waits for b's ACK
        StandInStandby.ReadUntilShipped(input, Topic, id); // m1: offsets [0, 2) sent
        Assert.False(held.IsCompleted, "m1 waits for the standby's ACK");

        // (received, durable) per ACK: the last is the invalid one; every earlier one is valid and confirms only m0.
        var (acks, reason) = ack switch
        {
            "unknown-id" => (new[] { (id + 5, 2L, 2L) }, $"topic id {id + 5}, which this link never announced"),
            "beyond-sent" => ([(id, 5L, 0L)], $"topic '{Topic}' (id {id}): received position 5 is beyond 2, the end of what this link sent"),
            "durable-beyond-received" => ([(id, 1L, 2L)], $"topic '{Topic}' (id {id}): durable position 2 is beyond its received position 1"),
            "received-back" => ([(id, 1L, 1L), (id, 0L, 0L)], $"topic '{Topic}' (id {id}): received position 0 goes back from 1"),
            _ => ([(id, 1L, 1L), (id, 1L, 0L)], $"topic '{Topic}' (id {id}): durable position 0 goes back from 1"),
        };
        var f = new FrameBuffer(256);
        foreach (var (topicId, received, durable) in acks)
        {
            f.Begin(FrameKind.Ack).U32(1).U32(topicId).I64(received).I64(durable).End();
            f.SendTo(link);
        }

        var disconnected = $"replication: standby 'b' disconnected: invalid ACK from the standby: {reason}; nothing of it confirmed";
        Assert.True(
            Eventually.TryWait(() => lines.Contains(disconnected), s_endDeadline),
            $"a logs '{disconnected}' within {s_endDeadline.TotalSeconds} s: [{string.Join(" | ", lines)}]");
        var status = NodeStatus.Parse(node.GetStatusJson());
        Assert.True(status.Standby is not { Attached: true }, $"no standby attached: {status.Json}");

        // m1 is confirmed as local once the link ended (degraded), never as replicated by the invalid ACK.
        Assert.Equal(1, await Eventually.Completes(held, s_deadline));
        status = NodeStatus.Parse(node.GetStatusJson());
        Assert.True(status.Standby?.Degraded == degraded + 1, $"m1 confirmed as local ({degraded} degraded before), not by the invalid ACK: {status.Json}");
    }
}
