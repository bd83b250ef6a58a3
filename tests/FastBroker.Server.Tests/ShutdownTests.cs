using System.Buffers;
using System.Text;
using FastBroker.Protocol;
using FastBroker.Server;

namespace FastBroker.ServerTests;

public class ShutdownTests
{
    [Fact]
    public async Task Stop_delivers_outstanding_confirmations_then_Closed_with_CLOSE_then_closes()
    {
        await using var f = await ServerFixture.StartAsync();

        // Group-commit confirmations: they trail the writes, so some are outstanding when the stop begins.
        f.Broker.CreateTopic("s", f.Broker.Options.DefaultTopicOptions with { Durability = Durability.Fsynced });
        await using var sub = await f.ConnectAsync();
        await sub.SubscribeAsync(1, 1, "s", 0);
        Assert.Equal(FrameType.Ok, (await sub.ReadAsync()).Type);
        await using var pub = await f.ConnectAsync();
        const int N = 2_000;
        var w = new ArrayBufferWriter<byte>();
        for (var i = 1; i <= N; i++)
        {
            FrameWriter.WritePublish(w, (ulong)i, "s"u8, Encoding.UTF8.GetBytes($"m{i}"));
        }

        await pub.SendRawAsync(w.WrittenMemory);
        var first = await pub.ReadAsync(); // a CONFIRM: the server is reading and confirming
        Assert.Equal(FrameType.Confirm, first.Type);
        var stop = f.Server.StopAsync(TimeSpan.FromSeconds(20));

        var frames = await pub.ReadUntilClosedAsync();
        await stop;
        frames.Insert(0, first);

        var last = frames[^1];
        Assert.True(last.Type == FrameType.Error && last.ErrorCode == ErrorCode.Closed && last.CloseConnection && last.RequestId == 0, $"last frame: {last}");
        Assert.All(frames[..^1], x => Assert.Equal(FrameType.Confirm, x.Type));

        // Every publish the broker stored was confirmed before Closed: request ids 1 up to the head, once each.
        var stored = f.Broker.GetSnapshot().Topics.Single(t => t.Name == "s").Head;
        var ids = ConfirmedIds(frames);
        Assert.Equal(Enumerable.Range(1, (int)stored).Select(i => (ulong)i), ids);
        Assert.All(frames.SelectMany(x => x.Ranges), r => Assert.Equal(ErrorCode.None, r.Status));

        var subFrames = await sub.ReadUntilClosedAsync();
        Assert.Equal(ErrorCode.Closed, subFrames.Single().ErrorCode);
        Assert.Equal(0, f.Server.ConnectionCount);
    }

    [Fact]
    public async Task A_client_that_half_closes_after_publishing_gets_every_confirmation_before_the_server_closes()
    {
        await using var f = await ServerFixture.StartAsync();

        // Group-commit confirmations trail the writes: the end of stream arrives while they are outstanding.
        f.Broker.CreateTopic("hc", f.Broker.Options.DefaultTopicOptions with { Durability = Durability.Fsynced });
        await using var c = await f.ConnectAsync();
        const int N = 500;
        await c.SendRawAsync(Publishes("hc"u8, N).WrittenMemory);
        c.ShutdownSend(); // done sending, still reading

        var frames = await c.ReadUntilClosedAsync();
        Assert.All(frames, x => Assert.Equal(FrameType.Confirm, x.Type));
        var ids = ConfirmedIds(frames);
        Assert.Equal(Enumerable.Range(1, N).Select(i => (ulong)i), ids);
        Assert.All(frames.SelectMany(x => x.Ranges), r => Assert.Equal(ErrorCode.None, r.Status));
        Assert.Equal(N, f.Broker.GetSnapshot().Topics.Single(t => t.Name == "hc").Head);
    }

    [Fact]
    public async Task A_malformed_frame_after_publishes_is_answered_after_their_confirmations()
    {
        await using var f = await ServerFixture.StartAsync();
        f.Broker.CreateTopic("mf", f.Broker.Options.DefaultTopicOptions with { Durability = Durability.Fsynced });
        await using var c = await f.ConnectAsync();
        const int N = 500;
        var w = Publishes("mf"u8, N);
        FrameWriter.WritePing(w, N + 1);
        var bytes = w.WrittenSpan.ToArray();
        bytes[^10] = 1; // a reserved header byte of the PING (offset 6 of 16): malformed
        await c.SendRawAsync(bytes);

        var frames = await c.ReadUntilClosedAsync();
        var last = frames[^1];
        Assert.True(last.Type == FrameType.Error && last.ErrorCode == ErrorCode.MalformedFrame && last.CloseConnection, $"last frame: {last}");
        Assert.All(frames[..^1], x => Assert.Equal(FrameType.Confirm, x.Type));

        // Everything before the bad frame was stored, and its confirmations precede the ERROR.
        Assert.Equal(N, f.Broker.GetSnapshot().Topics.Single(t => t.Name == "mf").Head);
        var ids = ConfirmedIds(frames);
        Assert.Equal(Enumerable.Range(1, N).Select(i => (ulong)i), ids);
    }

    [Fact]
    public async Task A_stopped_server_can_be_started_again_on_the_same_port_at_once()
    {
        await using var f = await ServerFixture.StartAsync();
        var port = f.EndPoint.Port;
        await using (var c = await f.ConnectAsync())
        {
            await c.PublishAsync(1, "r", "x");
            await c.ReadConfirmsAsync([1]);
            await f.Server.StopAsync(TimeSpan.FromSeconds(5));
            await c.ExpectClosedWithAsync(ErrorCode.Closed);
        }

        // The server closed first, so its side of the old connection sits in TIME_WAIT: binding must still work.
        await using var again = await BrokerServer.StartAsync(f.Broker, ServerOptions.Default with { Port = port });
        await using var d = await RawConnection.OpenAsync(again.EndPoint);
        await d.PublishAsync(2, "r", "y");
        Assert.Equal((ErrorCode.None, 1UL, false), (await d.ReadConfirmsAsync([2]))[2]);
    }

    /// <summary>PUBLISH frames with request ids 1 to <paramref name="count"/>.</summary>
    private static ArrayBufferWriter<byte> Publishes(ReadOnlySpan<byte> topic, int count)
    {
        var w = new ArrayBufferWriter<byte>();
        for (var i = 1; i <= count; i++)
        {
            FrameWriter.WritePublish(w, (ulong)i, topic, Encoding.UTF8.GetBytes($"m{i}"));
        }

        return w;
    }

    /// <summary>The request ids the CONFIRM frames cover, in order.</summary>
    private static List<ulong> ConfirmedIds(IEnumerable<ServerFrame> frames) =>
        frames.SelectMany(x => x.Ranges).SelectMany(r => Enumerable.Range(0, (int)r.Count).Select(i => r.FirstRequestId + (ulong)i)).Order().ToList();
}
