namespace FastBroker.Protocol;

/// <summary>Header flags of ERROR.</summary>
[Flags]
public enum ErrorFlags : byte
{
    /// <summary>Only the request failed; the connection stays open.</summary>
    None = 0,

    /// <summary>The server closes the connection after this frame.</summary>
    CloseConnection = 1 << 0,

    /// <summary>The subscription named by <c>subscriptionId</c> has ended; no more deliveries for it.</summary>
    SubscriptionEnded = 1 << 1,
}
