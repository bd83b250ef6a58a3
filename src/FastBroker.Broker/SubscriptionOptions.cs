namespace FastBroker;

/// <summary>How a subscription starts and what it lets through.</summary>
public sealed record SubscriptionOptions
{
    /// <summary>Latest, not durable, no filters.</summary>
    public static SubscriptionOptions Default { get; } = new();

    /// <summary>Where to start in each matching topic (topics created later are read from their beginning).</summary>
    public StartPosition Start { get; init; } = StartPosition.Latest;

    /// <summary>
    /// A name makes the subscription durable: its committed positions survive restarts (and failover). One open
    /// subscription per name: <c>Subscribe</c> refuses a second with <see cref="BrokerErrorCode.DurableNameInUse"/>
    /// until the first is disposed.
    /// </summary>
    public string? DurableName { get; init; }

    /// <summary>
    /// Commit the position after every fetch (durable subscriptions): after <see cref="Subscription.Fetch{THandler}(int, ref THandler)"/>
    /// and <see cref="Subscription.ConsumeAsync{THandler}"/> once the handler has returned; for <see cref="Subscription.ReadAllAsync"/>
    /// once the loop asks for the message after a batch's last. Off: call <see cref="Subscription.Commit()"/>.
    /// </summary>
    public bool AutoCommit { get; init; }

    /// <summary>
    /// Only messages whose headers have all of these values (UTF-8 text) are delivered: for each filter, some entry of
    /// that name with exactly that value (a name may repeat in a message; any of its entries can match). One value per
    /// header name: <c>Subscribe</c> refuses a dictionary that lists a name twice with different values with
    /// <see cref="BrokerErrorCode.InvalidArgument"/>, as the server refuses such a SUBSCRIBE; and, as the .NET client
    /// does, text that is not valid UTF-16 (a lone surrogate) and a filter no message can carry (a name empty or over 255
    /// UTF-8 bytes, a value over 65535 bytes). A filter on <c>fb-expires</c> or <c>fb-producer</c> is refused too, as
    /// the server and the client refuse it: the broker writes those headers itself, with a binary value per message (an
    /// expiry time; a producer id and sequence) that a text filter cannot select messages by.
    /// </summary>
    public IReadOnlyDictionary<string, string>? HeaderFilters { get; init; }

    /// <summary>
    /// Messages fetched per round by <see cref="Subscription.ReadAllAsync"/>, <see cref="Subscription.ConsumeAsync{THandler}"/>
    /// and an inline subscription's delivery; at least 1 (<c>Subscribe</c> refuses less with <see cref="BrokerErrorCode.InvalidArgument"/>).
    /// </summary>
    public int BatchSize { get; init; } = 256;
}
