using System.Collections.Concurrent;
using FastBroker.Client;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

/// <summary>
/// Application code the client calls back throws: the <see cref="BrokerClientOptions.OnEvent"/> callback on every
/// event, a handler subscription on some messages, the body of an <c>await foreach</c> over a subscription. Each is
/// surfaced as docs/client.md says (a handler's exception as <see cref="BrokerClientEventKind.HandlerFailed"/>, the
/// loop body's to the code that enumerates) and the client goes on: other subscriptions, publishes, and a reconnect
/// whose Disconnected and Connected events throw too.
/// </summary>
public class UserCodeFailureTests
{
    [Fact]
    public async Task Throwing_event_callback_handler_and_loop_body_leave_publishes_other_subscriptions_and_reconnects_working()
    {
        await using var f = await ServerFixture.StartAsync();
        var events = new ConcurrentQueue<BrokerClientEvent>();
        var client = await f.ConnectAsync(o => o with
        {
            OnEvent = e =>
            {
                events.Enqueue(e);
                throw new InvalidOperationException($"the application's event callback failed on {e.Kind}");
            },
        });
        var handled = new ConcurrentQueue<long>();
        await using var consumer = await client.ConsumeAsync("u.handled", new ThrowingOnOdd(handled), SubscribeOptions.Default with { Start = SubscribeStart.Earliest, Credit = 4 });
        await using var other = await client.CreateSubscriptionAsync("u.other", SubscribeOptions.Default with { Start = SubscribeStart.Earliest });
        var bodyFailure = Task.Run(async () =>
        {
            await foreach (var m in client.SubscribeAsync("u.loop", SubscribeOptions.Default with { Start = SubscribeStart.Earliest }))
            {
                throw new FormatException($"the application could not parse {m.GetPayloadString()}");
            }
        });

        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(i, await Within(client.PublishAsync("u.handled", Bytes($"h{i}"))));
            Assert.Equal(i, await Within(client.PublishAsync("u.other", Bytes($"o{i}"))));
        }

        await Within(client.PublishAsync("u.loop", Bytes("garbage")));
        var thrown = await Assert.ThrowsAsync<FormatException>(() => bodyFailure.WaitAsync(Deadline));
        Assert.Contains("garbage", thrown.Message, StringComparison.Ordinal);
        await EventuallyAsync(() => handled.Count == 10, "the handler was called for every message, the throwing ones included");
        Assert.Equal(5, events.Count(e => e.Kind == BrokerClientEventKind.HandlerFailed && e.Exception is InvalidOperationException));
        Assert.Equal(Enumerable.Range(0, 10).Select(i => $"o{i}"), (await TakeAsync(other, 10)).Select(m => m.GetPayloadString()));
        Assert.True(consumer.IsActive);

        // A reconnect: its Disconnected and Connected events throw, and everything resumes.
        await f.RestartServerAsync();
        await EventuallyAsync(() => client.ConnectCount == 2 && client.IsConnected, "the client reconnected");
        Assert.Contains(events, e => e.Kind == BrokerClientEventKind.Disconnected);
        Assert.Equal(10, await Within(client.PublishAsync("u.handled", Bytes("h10"))));
        Assert.Equal(10, await Within(client.PublishAsync("u.other", Bytes("o10"))));
        Assert.Equal("o10", (await TakeAsync(other, 1)).Single().GetPayloadString());
        await EventuallyAsync(() => handled.Count == 11, "the handler subscription resumed");
        Assert.Equal(Enumerable.Range(0, 11).Select(i => (long)i), handled);
        Assert.True(consumer.IsActive);
    }

    private sealed class ThrowingOnOdd(ConcurrentQueue<long> handled) : IClientMessageHandler
    {
        public void OnMessage(scoped in ClientMessageView message)
        {
            handled.Enqueue(message.Offset);
            if (message.Offset % 2 == 1)
            {
                throw new InvalidOperationException($"the application's handler failed at offset {message.Offset}");
            }
        }
    }
}
