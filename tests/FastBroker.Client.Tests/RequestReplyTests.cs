using FastBroker.Client;
using FastBroker.Protocol;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

public class RequestReplyTests
{
    [Fact]
    public async Task A_request_gets_the_responders_reply_matched_by_correlation_id()
    {
        await using var f = await ServerFixture.StartAsync();
        var responderClient = await f.ConnectAsync();
        await using var requests = await responderClient.CreateSubscriptionAsync("svc.echo");
        using var stop = new CancellationTokenSource();
        var responder = Task.Run(async () =>
        {
            try
            {
                await foreach (var request in requests.ReadAllAsync(stop.Token))
                {
                    await responderClient.ReplyAsync(request, Bytes("echo:" + request.GetPayloadString()));
                }
            }
            catch (OperationCanceledException)
            {
            }
        });

        var requester = await f.ConnectAsync();
        var replies = await Task.WhenAll(Enumerable.Range(0, 20).Select(i => requester.RequestAsync("svc.echo", Bytes($"q{i}"), TimeSpan.FromSeconds(60)).AsTask()));
        Assert.Equal(Enumerable.Range(0, 20).Select(i => $"echo:q{i}"), replies.Select(r => r.GetPayloadString()));
        Assert.All(replies, r => Assert.Equal(requester.InboxTopic, r.Topic));

        await stop.CancelAsync();
        await responder.WaitAsync(Deadline);
    }

    [Fact]
    public async Task A_request_nobody_answers_fails_with_Timeout()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();
        var error = await Assert.ThrowsAsync<BrokerClientException>(async () => await client.RequestAsync("svc.nobody", Bytes("?"), TimeSpan.FromMilliseconds(200)));
        Assert.Equal(Protocol.ErrorCode.Timeout, error.ErrorCode);
    }

    /// <summary>
    /// The timeout bounds the whole request, also while the client is between connections: the inbox subscription and
    /// the request's publish wait for the reconnect, which may take up to ReconnectTimeout (here 120 s, beyond the
    /// test's deadline), and must not hold the caller past its 500 ms.
    /// </summary>
    [Fact]
    public async Task A_request_made_while_the_server_is_unreachable_fails_with_Timeout_after_its_timeout()
    {
        await using var f = await ServerFixture.StartAsync();
        var opened = await f.ConnectAsync(); // its inbox is subscribed before the outage: the request's publish waits
        var fresh = await f.ConnectAsync(); // no inbox yet: subscribing it waits
        var first = await Assert.ThrowsAsync<BrokerClientException>(async () => await opened.RequestAsync("svc.down", Bytes("?"), TimeSpan.FromMilliseconds(200)));
        Assert.Equal(Protocol.ErrorCode.Timeout, first.ErrorCode);

        await f.StopServerAsync();
        await EventuallyAsync(() => !opened.IsConnected && !fresh.IsConnected, "the clients noticed");
        foreach (var client in new[] { opened, fresh })
        {
            var error = await Assert.ThrowsAsync<BrokerClientException>(() => client.RequestAsync("svc.down", Bytes("q"), TimeSpan.FromMilliseconds(500)).AsTask().WaitAsync(Deadline));
            Assert.Equal(Protocol.ErrorCode.Timeout, error.ErrorCode);
        }
    }

    /// <summary>
    /// A broker restart renumbers the inbox (a transient topic) from 0. A reply stored before the requester resubscribed
    /// its inbox sits below the offset the inbox resumes at (here 3), where the server started it at the head: the
    /// reply was never delivered and the request timed out. The inbox resumes with fallback Earliest instead, which the
    /// server's WELCOME grants (OffsetFallback).
    /// </summary>
    [Fact]
    public async Task A_reply_stored_after_a_broker_restart_before_the_inbox_is_resubscribed_still_arrives()
    {
        await using var f = await ServerFixture.StartAsync();
        var requester = await f.ConnectAsync();
        Assert.True(requester.Features.HasFlag(ProtocolFeatures.OffsetFallback), $"granted: {requester.Features}");
        await ReplyAcrossRenumberedInboxAsync(f, requester);
    }

    /// <summary>
    /// The same against a server that predates the fallback (it grants no OffsetFallback and starts an Offset resume
    /// past the head at the head, ignoring fallbackKind): the client resumed its inbox at Offset 3 all the same, the
    /// restarted server started it at the head (1, after the reply), and the request timed out. The inbox now resumes at
    /// Earliest there, every reply it holds delivered again and matched by correlation id.
    /// </summary>
    [Fact]
    public async Task Against_a_server_without_OffsetFallback_a_reply_stored_after_a_broker_restart_still_arrives()
    {
        await using var f = await ServerFixture.StartAsync(o => o with { WithheldFeatures = ProtocolFeatures.OffsetFallback });
        var requester = await f.ConnectAsync();
        Assert.False(requester.Features.HasFlag(ProtocolFeatures.OffsetFallback), $"granted: {requester.Features}");
        await ReplyAcrossRenumberedInboxAsync(f, requester);
    }

    private static async Task ReplyAcrossRenumberedInboxAsync(ServerFixture f, BrokerClient requester)
    {
        var requests = f.Broker.Subscribe("svc.renumbered", new SubscriptionOptions { Start = StartPosition.Earliest });
        using var cts = new CancellationTokenSource(Deadline);
        var reader = requests.ReadAllAsync(cts.Token).GetAsyncEnumerator(cts.Token);
        async Task<Message> NextRequestAsync()
        {
            Assert.True(await reader.MoveNextAsync(), "a request arrives");
            return reader.Current;
        }

        static MessageHeaders Correlated(Message request) => new MessageHeaders().Add("fb-correlation-id", request.Header("fb-correlation-id")!);

        // The in-process responder answers three requests: the inbox has received offsets 0 to 2 and resumes at 3.
        for (var i = 0; i < 3; i++)
        {
            var pending = requester.RequestAsync("svc.renumbered", Bytes($"before{i}"), Deadline);
            var request = await NextRequestAsync();
            await f.Broker.PublishAsync(request.HeaderText("fb-reply-to")!, Bytes($"reply{i}"), headers: Correlated(request));
            Assert.Equal($"reply{i}", (await Within(pending)).GetPayloadString());
        }

        var inFlight = requester.RequestAsync("svc.renumbered", Bytes("across"), Deadline);
        var last = await NextRequestAsync();
        await reader.DisposeAsync();
        requests.Dispose();

        // The reply is stored on the restarted broker before its server listens, so before the requester can resubscribe:
        // at offset 0 of the renumbered inbox.
        await f.RestartBrokerAsync(async b => Assert.Equal(0, await b.PublishAsync(last.HeaderText("fb-reply-to")!, Bytes("answer"), headers: Correlated(last))));
        Assert.Equal("answer", (await Within(inFlight)).GetPayloadString());

        // And the inbox goes on: the next reply (offset 1) is not taken for a redelivery.
        using var again = f.Broker.Subscribe("svc.renumbered", new SubscriptionOptions { Start = StartPosition.Earliest });
        var next = requester.RequestAsync("svc.renumbered", Bytes("after"), Deadline);
        await foreach (var request in again.ReadAllAsync(cts.Token))
        {
            if (request.PayloadText == "after")
            {
                Assert.Equal(1, await f.Broker.PublishAsync(request.HeaderText("fb-reply-to")!, Bytes("answer2"), headers: Correlated(request)));
                break;
            }
        }

        Assert.Equal("answer2", (await Within(next)).GetPayloadString());
    }

    [Fact]
    public async Task Replying_to_a_message_that_is_not_a_request_is_an_argument_error()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();
        await client.PublishAsync("plain", Bytes("x"));
        await using var sub = await client.CreateSubscriptionAsync("plain", SubscribeOptions.Default with { Start = SubscribeStart.Earliest });
        var m = (await TakeAsync(sub, 1))[0];
        Assert.Throws<ArgumentException>(() => client.ReplyAsync(m, Bytes("y")));
    }
}
