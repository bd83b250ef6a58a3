using System.Buffers;
using System.Text;
using FastBroker.Protocol;
using FastBroker.Testing;

namespace FastBroker.ServerTests;

/// <summary>
/// Confirmations the journaler thread sends itself while the connection's writer sleeps (ServerOptions.ConfirmsFromJournaler),
/// and the hand-over to the writer when the socket takes only part of them.
/// </summary>
public class JournalerConfirmTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Publishes_one_at_a_time_are_confirmed_by_the_journaler_only_when_enabled(bool enabled)
    {
        await using var f = await ServerFixture.StartAsync(s => s with { ConfirmsFromJournaler = enabled });
        await using var c = await f.ConnectAsync();
        for (var i = 0; i < 20; i++)
        {
            var id = c.NextRequestId();
            await c.PublishAsync(id, "lone", $"m{i}");
            var confirms = await c.ReadConfirmsAsync([id]);
            Assert.Equal((ErrorCode.None, (ulong)i, false), confirms[id]);
        }

        if (enabled)
        {
            // Each publish finds the writer asleep unless it has not yet gone back to sleep after the previous
            // CONFIRM: on a loaded machine a few may, all 20 cannot plausibly.
            Assert.InRange(f.Server.JournalerConfirms, 1, 20);
        }
        else
        {
            Assert.Equal(0, f.Server.JournalerConfirms);
        }

        Assert.Equal(0, f.Server.JournalerConfirmsShort);
        Assert.Empty(f.Failures);
    }

    [Fact]
    public async Task A_short_journaler_send_hands_the_rest_to_the_writer_and_every_confirmation_arrives_once_in_order()
    {
        await using var f = await ServerFixture.StartAsync();

        // Small buffers on both ends: a few KiB of unread CONFIRMs fill the connection. Publishes alternate between two
        // topics, so no two confirmations merge into one range (24 bytes each, 480 KB in all). While the writer sleeps
        // only the journaler sends (up to 64 KiB per batch, far more than the buffers hold), so the send that meets
        // the full socket is the journaler's, and it comes back short.
        await using var c = await f.ConnectAsync(receiveBufferSize: 4096);
        var session = f.Server.Sessions.Single();
        session.Socket.SendBufferSize = 4096;

        const int Count = 20_000;
        byte[][] topics = [Encoding.UTF8.GetBytes("short-a"), Encoding.UTF8.GetBytes("short-b")];
        var payload = new byte[16];
        var first = c.NextRequestId();
        var sender = Task.Run(async () =>
        {
            var w = new ArrayBufferWriter<byte>();
            for (var i = 0; i < Count; i++)
            {
                w.ResetWrittenCount();
                FrameWriter.WritePublish(w, first + (ulong)i, topics[i % 2], payload);
                await c.SendRawAsync(w.WrittenMemory);
            }
        });

        await Eventually.Completes(sender);
        await Eventually.TrueAsync(() => f.Server.JournalerConfirmsShort > 0, "a journaler send met the full socket and came back short");

        // Now read: every publish is confirmed exactly once, at its topic's next offset; the stream is whole (any lost
        // or repeated byte would break the framing), and the writer still answers afterwards.
        var ids = Enumerable.Range(0, Count).Select(i => first + (ulong)i).ToArray();
        var confirms = await c.ReadConfirmsAsync(ids);
        for (var i = 0; i < Count; i++)
        {
            Assert.Equal((ErrorCode.None, (ulong)(i / 2), false), confirms[ids[i]]);
        }

        var ping = c.NextRequestId();
        await c.SendAsync(w => FrameWriter.WritePing(w, ping));
        var pong = await c.ReadAsync();
        Assert.Equal((FrameType.Pong, ping), (pong.Type, pong.RequestId));
        Assert.Empty(f.Failures);
    }
}
