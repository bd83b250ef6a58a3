namespace FastBroker.Ring;

/// <summary>What a poll found.</summary>
public enum PollState
{
    /// <summary>Events were handed to the handler.</summary>
    Processing,

    /// <summary>Events are published but an upstream consumer the poller depends on has not finished them.</summary>
    Gating,

    /// <summary>Nothing new is published.</summary>
    Idle,
}
