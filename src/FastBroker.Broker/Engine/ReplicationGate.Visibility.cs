namespace FastBroker.Engine;

// Consumer visibility: on the primary, what the standby must hold before subscriptions and work-queue members are given a
// record (TopicState.VisibleEnd), degrading with the confirmations while no standby is attached.
internal sealed partial class ReplicationGate
{
    /// <summary>
    /// What a record of a persistent topic must have reached before subscriptions and work-queue members on this primary
    /// are given it: <see cref="AckMode.Local"/> (the default), durable here, as on a single broker;
    /// <see cref="AckMode.StandbyReceived"/> / <see cref="AckMode.StandbyDurable"/>, also received / flushed by the
    /// standby (Kafka's high watermark), so no consumer acts on a record a failover takes back. While no standby is
    /// attached that bound stands still (consumers wait), unless confirmations degrade to local: then it degrades with
    /// them (<see cref="DegradeToLocal"/>, <see cref="AllowDegrade"/>).
    /// </summary>
    public AckMode ConsumerVisibility { get; }

    /// <summary>
    /// True while the consumer-visible end of each topic follows the standby's positions: a visibility other than
    /// local, and a standby confirming or degrading not allowed now.
    /// </summary>
    internal bool VisibilityGated => ConsumerVisibility != AckMode.Local && (_standbyAttached || !_degradeAllowed);

    /// <summary>
    /// A topic of the broker this gate confirms for, before any reader can find it (at the broker's open, and for a
    /// topic created later just before the registry lists it): the dispatcher wakes the replicator through it, and with
    /// a consumer visibility other than local its consumers read only up to what the standby holds from the start.
    /// </summary>
    public void Adopt(TopicState topic)
    {
        topic.Replication = this;
        if (ConsumerVisibility != AckMode.Local && topic.Persistent)
        {
            For(topic).RefreshVisible();
        }
    }

    /// <summary>The standby came or went, or degrading was allowed or withdrawn: every topic's consumer-visible end again.</summary>
    private void RefreshVisibility()
    {
        if (ConsumerVisibility == AckMode.Local)
        {
            return;
        }

        foreach (var t in Snapshot())
        {
            t.RefreshVisible();
        }
    }
}
