using FastBroker.Client;
using FastBroker.Protocol;

namespace FastBroker.ClientTests;

/// <summary>
/// A SUBSCRIBE's filters mean the same to the embedded broker and through a client and a real server: each case is
/// tried on both, side by side.
/// </summary>
public class SubscribeAgreementTests
{
    [Fact]
    public async Task A_filter_with_a_lone_surrogate_is_refused_by_the_client_in_the_embedded_brokers_words()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();

        // UTF-8 cannot carry a lone surrogate. Before, the client sent it as U+FFFD (a filter on other text than the
        // caller's, and two names could become one) while the embedded broker refused it.
        var cases = new (Dictionary<string, string> Filters, string Reason)[]
        {
            (new() { ["ccy\uD800"] = "USD" }, "header filter 'ccy\uD800': names and values must be valid UTF-16 text (a lone surrogate cannot be encoded as UTF-8)"),
            (new() { ["ccy"] = "US\uDC00D" }, "header filter 'ccy': names and values must be valid UTF-16 text (a lone surrogate cannot be encoded as UTF-8)"),
        };
        foreach (var (filters, reason) in cases)
        {
            var embedded = Assert.Throws<BrokerException>(() => f.Broker.Subscribe("fx", new SubscriptionOptions { HeaderFilters = filters }));
            Assert.Equal((BrokerErrorCode.InvalidArgument, reason), (embedded.Code, embedded.Message));
            var remote = await Assert.ThrowsAsync<BrokerClientException>(async () => await client.CreateSubscriptionAsync("fx", SubscribeOptions.Default with { Filters = filters }));
            Assert.Equal((ErrorCode.InvalidArgument, "SUBSCRIBE: " + reason), (remote.ErrorCode, remote.Reason));
            var consumer = await Assert.ThrowsAsync<BrokerClientException>(async () => await client.ConsumeAsync("fx", new Ignore(), SubscribeOptions.Default with { Filters = filters }));
            Assert.Equal(remote.Reason, consumer.Reason);
        }

        // Nothing was sent: the server has no subscription, and the connection is the first one, still open.
        Assert.Empty(f.Broker.GetSnapshot().Subscriptions);
        Assert.Equal((true, 1), (client.IsConnected, client.ConnectCount));
    }

    /// <summary>A handler for a consumer that is refused before it gets anything.</summary>
    private sealed class Ignore : IClientMessageHandler
    {
        public void OnMessage(scoped in ClientMessageView message)
        {
        }
    }
}
