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
