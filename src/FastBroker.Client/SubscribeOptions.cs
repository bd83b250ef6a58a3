namespace FastBroker.Client;

/// <summary>How a subscription starts, flows and filters. Immutable and reusable.</summary>
public sealed record SubscribeOptions
{
    /// <summary>From the latest message, not durable, 1000 credit, no filters.</summary>
    public static SubscribeOptions Default { get; } = new();

    /// <summary>Where to start.</summary>
    public SubscribeStart Start { get; init; } = SubscribeStart.Latest;

    /// <summary>
    /// Keep the position under this name across reconnects and restarts (commit it with
    /// <see cref="ClientSubscription.CommitAsync(CancellationToken)"/>); null = not durable. One open subscription per
    /// name on the server: subscribing takes the name over from another connection's subscription, which ends with
    /// <see cref="Protocol.ErrorCode.DurableNameInUse"/> (so a reconnect never waits for the server to notice the old
    /// connection); a name this client already has open, or that an embedded subscription holds, is refused with it.
    /// </summary>
    public string? DurableName { get; init; }

    /// <summary>
    /// The prefetch: messages the server may send before the application takes them. The client returns credit in
    /// halves as the application consumes, so at most this many messages are ever buffered for the subscription.
    /// </summary>
    public int Credit { get; init; } = 1000;

    /// <summary>
    /// Deliver only messages that have, for every entry, a header with that name and exactly that value (any entry of a
    /// repeated header); null = all. One value per header name: a dictionary that lists a name twice with different
    /// values is refused before anything is sent, with a <see cref="BrokerClientException"/> of code
    /// <see cref="Protocol.ErrorCode.InvalidArgument"/>, in the words the server and the embedded broker refuse it in
    /// (the same value twice is one filter). Text that is not valid UTF-16 (a lone surrogate, which UTF-8 cannot carry) and a filter no message can carry (a name empty
    /// or over 255 UTF-8 bytes, a value over 65535) are refused before anything is sent, with a
    /// <see cref="BrokerClientException"/> of the same code, in the embedded broker's words; so is a filter on
    /// <c>fb-expires</c> or <c>fb-producer</c>, headers the broker writes itself with a binary value per message (an
    /// expiry time; a producer id and sequence) that a text filter cannot select messages by, which the server and the
    /// embedded broker refuse in the same words. Other <c>fb-</c> names filter like any header.
    /// </summary>
    public IReadOnlyDictionary<string, string>? Filters { get; init; }
}
