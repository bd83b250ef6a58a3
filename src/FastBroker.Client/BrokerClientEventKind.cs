namespace FastBroker.Client;

/// <summary>What a <see cref="BrokerClientEvent"/> reports.</summary>
public enum BrokerClientEventKind
{
    /// <summary>A connection was established (the first one or after a loss).</summary>
    Connected,

    /// <summary>The connection was lost; the client reconnects unless it is closing or reconnect is off.</summary>
    Disconnected,

    /// <summary>A connection attempt failed; the client waits and tries again.</summary>
    ConnectFailed,

    /// <summary>The client gave up reconnecting; pending and future operations fail.</summary>
    GaveUp,

    /// <summary>A fire-and-forget publish failed (CONFIRM with an error status).</summary>
    PublishFailed,

    /// <summary>The server refused a request nobody awaits (ACK, NACK, CREDIT) or sent a connection-level ERROR.</summary>
    ServerError,

    /// <summary>
    /// A subscription missed messages (DROPPED): it fell a whole ring behind on a transient topic, or retention deleted
    /// messages of a persistent topic before it read them.
    /// </summary>
    MessagesDropped,

    /// <summary>The server ended a subscription (ERROR with SUBSCRIPTION_ENDED).</summary>
    SubscriptionEnded,

    /// <summary>
    /// The <see cref="IClientMessageHandler"/> of a <see cref="BrokerClient.ConsumeAsync{THandler}"/> subscription threw
    /// (<see cref="BrokerClientEvent.Exception"/>); the message counts as consumed and delivery continues.
    /// </summary>
    HandlerFailed,
}
