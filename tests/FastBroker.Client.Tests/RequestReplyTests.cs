using FastBroker.Client;
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
