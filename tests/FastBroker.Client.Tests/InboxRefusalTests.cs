using FastBroker.Client;
using FastBroker.Protocol;
using FastBroker.Server;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

/// <summary>
/// The reply inbox (request-reply) refused for good: its resume after a reconnect refused by a server whose token no
/// longer lets this client read the inbox (Forbidden). The requests waiting for a reply and every later request fail
/// at once with the refusal instead of each waiting out its timeout for a reply that can never arrive; a later
/// connection subscribes the inbox again.
/// </summary>
public class InboxRefusalTests
{
    [Fact]
    public async Task After_the_inbox_resume_is_refused_for_good_requests_fail_with_the_refusal_not_a_timeout()
    {
        var inboxAllowed = true;
        await using var f = await ServerFixture.StartAsync(server: s => s with
        {
            Tokens = [new AccessToken("t", SubscribePatterns: inboxAllowed ? null : ["svc.>"])],
        });
        var requester = await f.ConnectAsync(o => o with { AuthToken = "t" });

        // The inbox is subscribed: a reply comes through it. (A request left to time out did not show it: on a loaded
        // machine its 200 ms could end before the inbox's first OK, and the inbox, refused at its first SUBSCRIBE on the
        // next connection rather than at a resume, reported no SubscriptionEnded.)
        using (var once = f.Broker.Subscribe("svc.once", new SubscriptionOptions { Start = StartPosition.Earliest }))
        {
            var answered = requester.RequestAsync("svc.once", Bytes("?"), Deadline);
            using var read = new CancellationTokenSource(Deadline);
            await using var requests0 = once.ReadAllAsync(read.Token).GetAsyncEnumerator(read.Token);
            Assert.True(await requests0.MoveNextAsync(), "the first request arrives");
            await f.Broker.PublishAsync(
                requests0.Current.HeaderText("fb-reply-to")!,
                Bytes("first"),
                headers: new MessageHeaders().Add("fb-correlation-id", requests0.Current.Header("fb-correlation-id")!));
            Assert.Equal("first", (await Within(answered)).GetPayloadString());
        }

        // Its resume is only refused (SubscriptionEnded) if the client counts it subscribed before the restart (else its
        // first subscribe is refused instead): the client's own view too, not only the reply that came through it.
        await EventuallyAsync(() => requester.InboxSubscribed, "the inbox is subscribed before the restart");

        // Waiting for a reply across the restart (10 s: it fails with Timeout after them without the fix).
        var waiting = requester.RequestAsync("svc.none", Bytes("across"), TimeSpan.FromSeconds(10)).AsTask();

        inboxAllowed = false;
        await f.RestartServerAsync();
        await EventuallyAsync(
            () => f.Events.Any(e => e.Kind == BrokerClientEventKind.SubscriptionEnded && e.Code == ErrorCode.Forbidden),
            "the inbox's resume was refused");

        var pending = await Assert.ThrowsAsync<BrokerClientException>(() => waiting.WaitAsync(Deadline));
        Assert.True(pending.ErrorCode == ErrorCode.Forbidden, $"the waiting request: expected Forbidden, got {pending.ErrorCode}: {pending.Reason}");
        Assert.Contains(requester.InboxTopic, pending.Reason, StringComparison.Ordinal);

        var later = await Assert.ThrowsAsync<BrokerClientException>(() => requester.RequestAsync("svc.none", Bytes("later"), TimeSpan.FromSeconds(10)).AsTask().WaitAsync(Deadline));
        Assert.True(later.ErrorCode == ErrorCode.Forbidden, $"a later request: expected Forbidden, got {later.ErrorCode}: {later.Reason}");
        Assert.Contains(requester.InboxTopic, later.Reason, StringComparison.Ordinal);
        Assert.Contains("may not read", later.Reason, StringComparison.Ordinal); // the server's reason
        var refusal = Assert.IsType<BrokerClientException>(later.InnerException);
        Assert.Equal(ErrorCode.Forbidden, refusal.ErrorCode);

        // A server that lets the token read the inbox again: the next connection subscribes it anew.
        inboxAllowed = true;
        await f.RestartServerAsync();
        using var requests = f.Broker.Subscribe("svc.echo", new SubscriptionOptions { Start = StartPosition.Earliest });
        using var cts = new CancellationTokenSource(Deadline);
        var responder = Task.Run(async () =>
        {
            await foreach (var request in requests.ReadAllAsync(cts.Token))
            {
                await f.Broker.PublishAsync(
                    request.HeaderText("fb-reply-to")!,
                    Bytes("echo:" + request.PayloadText),
                    headers: new MessageHeaders().Add("fb-correlation-id", request.Header("fb-correlation-id")!));
            }
        });
        await EventuallyAsync(() => requester.IsConnected && requester.ConnectCount == 3, "the client reconnected");
        var reply = await requester.RequestAsync("svc.echo", Bytes("again"), Deadline).AsTask().WaitAsync(Deadline);
        Assert.Equal("echo:again", reply.GetPayloadString());
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => responder.WaitAsync(Deadline));
    }
}
