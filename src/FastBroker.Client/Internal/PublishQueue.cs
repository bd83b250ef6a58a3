namespace FastBroker.Client.Internal;

/// <summary>Which of the client's lists a <see cref="PendingPublish"/> is in.</summary>
internal enum PublishQueue : byte
{
    /// <summary>Neither (new, or done).</summary>
    None,

    /// <summary>Waiting for room under <see cref="BrokerClientOptions.MaxInFlight"/>, in call order.</summary>
    Admission,

    /// <summary>In the send list: not yet written, or written and not yet confirmed.</summary>
    Sending,
}
