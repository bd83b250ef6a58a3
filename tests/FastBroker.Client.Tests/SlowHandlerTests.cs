using System.Collections.Concurrent;
using FastBroker.Client;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

/// <summary>
/// A handler subscription whose handler works slowly (docs/client.md: it holds up the connection's reader while it
/// runs) next to a producer on the same client. What the server sent meanwhile, its PONGs included, waits unread in
/// the socket: that silence is this client's own, and must not count the server dead (the connection dropped, every
/// subscription resumed, the same slow handler holding the next connection up again).
/// </summary>
public class SlowHandlerTests
{
    [Fact]
    public async Task A_handler_that_holds_the_reader_past_the_dead_timeout_does_not_count_the_server_dead()
    {
        // PINGs every 500 ms: a PING unanswered for 1 s, or 4 s without receiving anything, would count the server dead.
        // The handler holds the reader for 12 PINGs (about 6 s): longer than both.
        var interval = TimeSpan.FromMilliseconds(500);
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync(o => o with { HeartbeatInterval = interval });
        using var release = new ManualResetEventSlim();
        var handler = new HoldingHandler(release);
        await using var consumer = await client.ConsumeAsync("slow.work", handler, SubscribeOptions.Default with { Start = SubscribeStart.Earliest });

        var framesBefore = f.Server.FramesIn;
        Assert.Equal(0, await Within(client.PublishAsync("slow.work", Bytes("first")))); // the handler holds the reader on this one
        await EventuallyAsync(() => handler.Holding, "the handler holds the reader");
        var later = client.PublishAsync("slow.work", Bytes("second")).AsTask(); // its CONFIRM waits behind the handler too

        // The client's PINGs (and that publish) reach the server while its reader is held, unless the client counts
        // the server dead and closes the connection (the server sees it go; the client reports it only once its reader
        // is let go): then nothing more comes, and the handler is let go at once.
        var accepted = f.Server.ConnectionsAccepted;
        try
        {
            await EventuallyAsync(
                () => f.Server.FramesIn - framesBefore >= 13 || f.Server.ConnectionCount == 0 || f.Server.ConnectionsAccepted > accepted,
                "the client PINGs while its reader is held");
        }
        finally
        {
            release.Set();
        }

        Assert.Equal(1, await later.WaitAsync(Deadline));
        await EventuallyAsync(() => handler.Offsets.Count == 2, "the handler got both messages");
        Assert.Equal([0L, 1L], handler.Offsets);
        Assert.True(
            client.ConnectCount == 1 && !f.Events.Any(e => e.Kind == BrokerClientEventKind.Disconnected),
            string.Join(Environment.NewLine, f.Events.Select(e => $"{e.Kind}: {e.Message}")));
        Assert.True(consumer.IsActive);
    }

    /// <summary>Holds the reader on the first message until released (the slow work), then records each offset.</summary>
    private sealed class HoldingHandler(ManualResetEventSlim release) : IClientMessageHandler
    {
        private volatile bool _holding;

        public ConcurrentQueue<long> Offsets { get; } = new();

        public bool Holding => _holding;

        public void OnMessage(scoped in ClientMessageView message)
        {
            if (message.Offset == 0)
            {
                _holding = true;
                release.Wait(Deadline); // the slow work: bounded, so a broken test cannot hang the reader for ever
            }

            Offsets.Enqueue(message.Offset);
        }
    }
}
