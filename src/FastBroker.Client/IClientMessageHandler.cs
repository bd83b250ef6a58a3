namespace FastBroker.Client;

/// <summary>
/// Receives the messages of <see cref="BrokerClient.ConsumeAsync{THandler}"/> on the client's reader loop, one call
/// per message, in order per topic, with a view over the received bytes (no copy, no allocation). The view is valid
/// only during the call. The call must be quick and must never block or wait: while it runs the connection reads
/// nothing (no other deliveries, replies, confirms or heartbeats). Hand slow work to a queue of your own.
/// </summary>
/// <remarks>
/// Implement it on a struct to avoid an interface call per message (the client specialises its dispatch for the
/// handler type); the struct is copied into the subscription, so keep state you read elsewhere in an object it
/// references. An exception thrown by the handler is reported as <see cref="BrokerClientEventKind.HandlerFailed"/>
/// and the message counts as consumed; delivery continues.
/// </remarks>
public interface IClientMessageHandler
{
    /// <summary>Handles one message.</summary>
    void OnMessage(scoped in ClientMessageView message);
}
