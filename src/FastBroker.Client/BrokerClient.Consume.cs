using FastBroker.Client.Internal;
using FastBroker.Protocol;

namespace FastBroker.Client;

/// <summary>Handler subscriptions: deliveries consumed on the reader loop, without a copy or an allocation per message.</summary>
public sealed partial class BrokerClient
{
    /// <summary>
    /// Subscribes (SUBSCRIBE, waits for the OK) and calls <paramref name="handler"/> on the client's reader loop for
    /// every message of every topic matching <paramref name="pattern"/>, per topic in offset order, with a view over
    /// the received bytes. A message is consumed when the handler returns: credit goes back at once (in halves of
    /// <see cref="SubscribeOptions.Credit"/>, as for <see cref="CreateSubscriptionAsync"/>), and a durable
    /// subscription's <see cref="ClientConsumer.CommitAsync"/> commits up to it. Dispose the result to unsubscribe.
    /// </summary>
    /// <remarks>
    /// The handler must be quick and must never block: while it runs the connection reads nothing else. It may be
    /// called before this method returns (deliveries can follow the OK at once). Reconnects behave as for
    /// <see cref="CreateSubscriptionAsync"/>: the client resubscribes where the handler is and drops redeliveries,
    /// so the handler sees each message once, in order; a resume refused for good ends the subscription, and
    /// <see cref="ClientConsumer.Completion"/> then fails with the server's code and reason. A handler that throws is reported as
    /// <see cref="BrokerClientEventKind.HandlerFailed"/> and delivery continues with the next message.
    /// </remarks>
    /// <typeparam name="THandler">The handler type; a struct is copied into the subscription and called without boxing.</typeparam>
    /// <exception cref="BrokerClientException">The server refused the subscription (e.g. <see cref="ErrorCode.InvalidName"/>), the client gave up reconnecting, or a filter the broker refuses (one no message can carry, one that is not valid UTF-16 text, one on fb-expires or fb-producer, two values for one header name) was refused before sending (<see cref="ErrorCode.InvalidArgument"/>, <see cref="SubscribeOptions.Filters"/>).</exception>
    public async ValueTask<ClientConsumer> ConsumeAsync<THandler>(string pattern, THandler handler, SubscribeOptions? options = null, CancellationToken cancellationToken = default)
        where THandler : IClientMessageHandler
    {
        if (handler is null)
        {
            throw new ArgumentNullException(nameof(handler));
        }

        options ??= SubscribeOptions.Default;
        if (options.Credit < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.Credit, "Credit must be at least 1.");
        }

        var filters = Utf8Names.EncodeFilters(options.Filters);
        if (filters.Length > 0 && (Features & ProtocolFeatures.HeaderFilters) == 0)
        {
            ThrowHelper.ThrowNotGranted(ProtocolFeatures.HeaderFilters);
        }

        var state = new SubscriptionState(NextSubscriptionId(), SubscriptionKind.Fanout, pattern, options.Credit, new MessageSink<THandler>(handler))
        {
            Start = options.Start,
            DurableName = options.DurableName,
            DurableUtf8 = options.DurableName is null ? [] : Utf8Names.Encode(options.DurableName, nameof(options.DurableName)),
            Filters = filters,
        };
        var start = await OpenAsync(state, cancellationToken).ConfigureAwait(false);
        return new ClientConsumer(this, state, (long)start);
    }
}
