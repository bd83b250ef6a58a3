namespace FastBroker.Client.Internal;

/// <summary>What a <see cref="SubscriptionState"/> serves.</summary>
internal enum SubscriptionKind : byte
{
    /// <summary>A fan-out subscription read by the application.</summary>
    Fanout,

    /// <summary>A work-queue membership.</summary>
    Group,

    /// <summary>The client's request-reply inbox: deliveries complete pending requests.</summary>
    Inbox,
}
