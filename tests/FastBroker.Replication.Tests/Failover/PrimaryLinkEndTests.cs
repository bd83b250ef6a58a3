using System.Collections.Concurrent;
using FastBroker.Replication;
using FastBroker.Replication.Internal;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A frame from the standby that ends the link (a REFUSE, a frame of an unknown kind, a malformed ACK) ends it the one
/// way, whichever thread reads it after the attach: the ack reader, or the journaler polling for a confirmation's ACK
/// (<see cref="ReplicationOptions.AckPoll"/>). The primary drops the link, logs <c>replication: standby 'b'
/// disconnected: …</c> with the reason, <c>/status</c> shows no standby attached, and a standby-mode publish is handled
/// as with no standby (with <see cref="ReplicationOptions.DegradeToLocal"/>: confirmed as local at once, the one waiting
/// when the link ended included) instead of waiting for an ACK that never comes. A stand-in standby on 127.0.0.1 says
/// HELLO and STATE_DIGESTS, reads the attach and the records of a standby-mode publish, and answers with the frame.
/// </summary>
public sealed class PrimaryLinkEndTests
{
    private const string Topic = "orders.ended";

    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(30);

    // For the link's end: past the ack reader's deferral, with the deadline's slack for a loaded machine.
    private static readonly TimeSpan s_endDeadline = TimeSpan.FromSeconds(60);

    [Theory]
    [InlineData("refuse", false, "the standby refused the stream")]
    [InlineData("refuse", true, "the standby refused the stream")]
    [InlineData("unknown", false, "unexpected replication frame 99 from the standby")]
    [InlineData("unknown", true, "unexpected replication frame 99 from the standby")]
    [InlineData("short-ack", false, "replication frame too short")]
    [InlineData("short-ack", true, "replication frame too short")]
    public async Task A_frame_that_ends_the_link_after_the_attach_ends_it_whichever_thread_reads_it(string frame, bool journalerReads, string reason)
    {
        using var dir = new TempDirectory();
        var lines = new ConcurrentQueue<string>();
        await using var node = await StandInStandby.StartPrimaryAsync(dir, lines, journalerReads, degradeToLocal: true);
        Assert.True(await node.WaitForRoleAsync(NodeRole.Primary, s_deadline), "a becomes primary");
        Assert.Equal(0, await node.Broker!.PublishAsync(Topic, "m0"u8.ToArray())); // no standby: local at once

        using var link = StandInStandby.Attach(node, out var input);
        ReadUntilRecords(input); // m0, the backlog
        await Eventually.TrueAsync(() => NodeStatus.Parse(node.GetStatusJson()).StandbyConfirming, "a confirms with b");
        var degraded = NodeStatus.Parse(node.GetStatusJson()).Standby!.Degraded;
        var held = node.Broker.PublishAsync(Topic, "m1"u8.ToArray()).AsTask(); // waits for b's ACK
        ReadUntilRecords(input); // m1
        Assert.False(held.IsCompleted, "m1 waits for the standby's ACK");

        var f = new FrameBuffer(256);
        switch (frame)
        {
            case "refuse":
                f.Begin(FrameKind.Refuse).I64(0).U8((byte)NodeRole.Standby).Str("b will not follow a").End();
                break;
            case "unknown":
                f.Begin((FrameKind)99).U32(0).End();
                break;
            default:
                f.Begin(FrameKind.Ack).U32(1).End(); // one topic said, none there
                break;
        }

        var standbyLink = node.Replicator!.Link;
        Assert.NotNull(standbyLink);
        f.SendTo(link);

        var disconnected = $"replication: standby 'b' disconnected: {reason}";
        Assert.True(
            Eventually.TryWait(() => lines.Any(l => l.StartsWith(disconnected, StringComparison.Ordinal)), s_endDeadline),
            $"a logs '{disconnected}…' within {s_endDeadline.TotalSeconds} s: [{string.Join(" | ", lines)}]");
        Assert.False(ReferenceEquals(node.Replicator!.Link, standbyLink), "a no longer holds the link it ended");
        var status = NodeStatus.Parse(node.GetStatusJson());
        Assert.True(status.Standby is not { Attached: true }, $"no standby attached: {status.Json}");
        Assert.Single(lines, l => l.Contains("replication: standby 'b' disconnected", StringComparison.Ordinal));

        // The publish held when the link ended, and one made after it, are handled as with no standby: local at once.
        Assert.Equal(1, await Eventually.Completes(held, s_deadline)); // held for the standby when the link ended
        Assert.Equal(2, await Eventually.Completes(node.Broker.PublishAsync(Topic, "m2"u8.ToArray()).AsTask(), s_deadline));
        status = NodeStatus.Parse(node.GetStatusJson());
        Assert.True(status.Standby?.Degraded == degraded + 2, $"m1 and m2 confirmed as local ({degraded} before): {status.Json}");
        if (frame == "refuse")
        {
            Assert.Contains(lines, l => l == "replication: standby refused the stream: b will not follow a");
        }
    }

    private static void ReadUntilRecords(FrameInput input)
    {
        FrameKind kind;
        while (input.Read(out kind, out _) && kind != FrameKind.Records)
        {
        }

        Assert.Equal(FrameKind.Records, kind);
    }
}
