namespace FastBroker;

/// <summary>How the broker's pipeline threads wait for work.</summary>
public enum BrokerWaitStrategy
{
    /// <summary>Spin briefly, then yield, then block: low latency under load, no CPU when idle. The default.</summary>
    Hybrid = 0,

    /// <summary>Block on a signal at once: least CPU, a wake-up costs a few microseconds.</summary>
    Blocking = 1,

    /// <summary>Spin then yield, never block: low latency, burns a core while idle.</summary>
    Yielding = 2,

    /// <summary>Busy-spin: lowest latency, burns a core per pipeline thread. Only for machines with cores to spare.</summary>
    BusySpin = 3,
}
