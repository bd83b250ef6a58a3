using FastBroker.Client;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

public class DurableSubscriptionTests
{
    /// <summary>
    /// A durable subscription that starts at Latest and has received nothing yet when the connection drops: what is
    /// published meanwhile must reach it after the reconnect (it resumes where its first OK said it started), not be
    /// skipped by a second Latest start.
    /// </summary>
    [Fact]
    public async Task A_durable_subscription_that_received_nothing_gets_what_was_published_while_it_was_disconnected()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var proxy = new FastBroker.Testing.TcpProxy(f.Port);
        var subscriber = await f.ConnectAsync(o => o with { Endpoints = [proxy.Endpoint] });
        await using var sub = await subscriber.CreateSubscriptionAsync("durable.quiet", SubscribeOptions.Default with { DurableName = "d", Start = SubscribeStart.Latest });

        proxy.Cut();
        await EventuallyAsync(() => subscriber.ConnectCount >= 1 && !subscriber.IsConnected, "the subscriber lost its connection");
        var publisher = await f.ConnectAsync();
        await publisher.PublishAsync("durable.quiet", Bytes("while away"));
        proxy.Restore();

        var got = await TakeAsync(sub, 1);
        Assert.Equal("while away", got[0].GetPayloadString());
    }

    /// <summary>
    /// The client's connection ends without the server seeing it (no FIN: it holds the old connection, and its durable
    /// subscription, until its idle timeout): the client resubscribes the durable name at once on a new connection, and
    /// must not be refused by its own dead one. The server gives the name to the new connection.
    /// </summary>
    [Fact]
    public async Task A_durable_subscription_resubscribes_while_the_server_still_holds_the_dead_connection()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var proxy = new FastBroker.Testing.TcpProxy(f.Port);
        var publisher = await f.ConnectAsync();
        var subscriber = await f.ConnectAsync(o => o with { Endpoints = [proxy.Endpoint] });
        await using var sub = await subscriber.CreateSubscriptionAsync("durable.halfopen", SubscribeOptions.Default with { DurableName = "h", Start = SubscribeStart.Committed(Protocol.StartKind.Earliest) });
        await publisher.PublishAsync("durable.halfopen", Bytes("before"));
        Assert.Equal("before", (await TakeAsync(sub, 1))[0].GetPayloadString());
        await sub.CommitAsync().AsTask().WaitAsync(Deadline);

        var connects = subscriber.ConnectCount;
        proxy.AbandonAll();
        await EventuallyAsync(() => subscriber.ConnectCount > connects && subscriber.IsConnected, "the subscriber reconnected");
        Assert.Equal(3, f.Server.ConnectionCount); // the publisher, the new connection and the dead one
        await publisher.PublishAsync("durable.halfopen", Bytes("after"));

        var got = await TakeAsync(sub, 1);
        Assert.Equal("after", got[0].GetPayloadString());
        Assert.Single(f.Broker.GetSnapshot().Subscriptions, s => s.DurableName == "h");
    }

    [Fact]
    public async Task A_new_client_resumes_a_durable_subscription_after_the_committed_position()
    {
        await using var f = await ServerFixture.StartAsync();
        var publisher = await f.ConnectAsync();
        for (var i = 0; i < 10; i++)
        {
            await publisher.PublishAsync("audit.log", Bytes($"m{i}"));
        }

        var options = SubscribeOptions.Default with { DurableName = "audit", Start = SubscribeStart.Committed(Protocol.StartKind.Earliest) };
        var first = await f.ConnectAsync();
        await using (var sub = await first.CreateSubscriptionAsync("audit.log", options))
        {
            var got = await TakeAsync(sub, 4);
            Assert.Equal(["m0", "m1", "m2", "m3"], got.Select(m => m.GetPayloadString()));
            await sub.CommitAsync().AsTask().WaitAsync(Deadline);

            // docs/protocol.md, COMMIT: the offset is the next one to deliver after a restart (last processed + 1),
            // whatever the server has already sent ahead under the subscription's credit (all 10 here): the resumed
            // subscription below must start at m4, not m10.
        }

        await first.DisposeAsync();

        var second = await f.ConnectAsync();
        await using var resumed = await second.CreateSubscriptionAsync("audit.log", options);
        var rest = await TakeAsync(resumed, 6);
        Assert.Equal(Enumerable.Range(4, 6).Select(i => $"m{i}"), rest.Select(m => m.GetPayloadString()));
        await second.CommitAsync(rest[^1]).AsTask().WaitAsync(Deadline);
    }

    [Fact]
    public async Task Committing_a_subscription_that_is_not_durable_is_refused_locally()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();
        await using var sub = await client.CreateSubscriptionAsync("plain.topic");
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await sub.CommitAsync());
    }
}
