using FastBroker.Client;
using FastBroker.Protocol;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

/// <summary>Checks that the embedded broker and a client through a real server treat a subscription's filters alike.</summary>
internal static class FilterAgreement
{
    /// <summary>
    /// <paramref name="filters"/> is refused with InvalidArgument in the same words by <c>Broker.Subscribe</c>, and with
    /// <c>SUBSCRIBE: </c> before them by the client's <c>CreateSubscriptionAsync</c> and <c>ConsumeAsync</c>, at the call:
    /// a client of a <see cref="SilentServer"/>, which answers no SUBSCRIBE, gets the same refusals.
    /// </summary>
    public static async Task AssertRefusedAlikeAsync(ServerFixture f, BrokerClient client, IReadOnlyDictionary<string, string> filters, string reason)
    {
        var embedded = Assert.Throws<BrokerException>(() => f.Broker.Subscribe("fx", new SubscriptionOptions { HeaderFilters = filters }));
        Assert.Equal((BrokerErrorCode.InvalidArgument, reason), (embedded.Code, embedded.Message));
        var remote = await Assert.ThrowsAsync<BrokerClientException>(async () => await client.CreateSubscriptionAsync("fx", SubscribeOptions.Default with { Filters = filters }));
        Assert.Equal((ErrorCode.InvalidArgument, "SUBSCRIBE: " + reason), (remote.ErrorCode, remote.Reason));
        var consumer = await Assert.ThrowsAsync<BrokerClientException>(async () => await client.ConsumeAsync("fx", new Ignore(), SubscribeOptions.Default with { Filters = filters }));
        Assert.Equal(remote.Reason, consumer.Reason);
        await AssertRefusedBeforeSendingAsync(filters, remote.Reason);
    }

    /// <summary>
    /// A client of a server that answers no SUBSCRIBE refuses <paramref name="filters"/> with
    /// <paramref name="reason"/> from <c>CreateSubscriptionAsync</c> and <c>ConsumeAsync</c>: the refusal is the
    /// client's own, before sending, not the server's answer (a SUBSCRIBE sent would wait for one until the deadline
    /// cancels it).
    /// </summary>
    public static async Task AssertRefusedBeforeSendingAsync(IReadOnlyDictionary<string, string> filters, string reason)
    {
        await using var silent = new SilentServer();
        await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [silent.Endpoint] }).AsTask().WaitAsync(Deadline);
        using var deadline = new CancellationTokenSource(Deadline);
        var subscription = await Assert.ThrowsAsync<BrokerClientException>(async () => await client.CreateSubscriptionAsync("fx", SubscribeOptions.Default with { Filters = filters }, deadline.Token));
        Assert.Equal((ErrorCode.InvalidArgument, reason), (subscription.ErrorCode, subscription.Reason));
        var consumer = await Assert.ThrowsAsync<BrokerClientException>(async () => await client.ConsumeAsync("fx", new Ignore(), SubscribeOptions.Default with { Filters = filters }, deadline.Token));
        Assert.Equal((ErrorCode.InvalidArgument, reason), (consumer.ErrorCode, consumer.Reason));
    }

    /// <summary>The first message both subscriptions deliver is <paramref name="payload"/> at <paramref name="offset"/>.</summary>
    public static async Task AssertFirstAlikeAsync(Subscription local, ClientSubscription remote, string payload, long offset)
    {
        var got = (await TakeAsync(remote, 1))[0];
        Assert.Equal((payload, offset), (got.GetPayloadString(), got.Offset));
        using var deadline = new CancellationTokenSource(Deadline);
        await foreach (var m in local.ReadAllAsync(deadline.Token))
        {
            Assert.Equal((payload, offset), (m.PayloadText, m.Offset));
            break;
        }
    }

    /// <summary>A handler for a consumer that is refused before it gets anything.</summary>
    private sealed class Ignore : IClientMessageHandler
    {
        public void OnMessage(scoped in ClientMessageView message)
        {
        }
    }
}
