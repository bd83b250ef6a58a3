namespace FastBroker.Engine;

/// <summary>
/// The replicator stage of the pipeline: sees every accepted message in ring order, in parallel with the
/// journaler; the dispatcher confirms a message only after both have passed it. The failover work fills this in
/// (streaming records to a standby and waiting for its acks per ack mode); until then the broker runs without it.
/// </summary>
internal interface IReplicator
{
    /// <summary>One accepted message (replicator thread). Do not keep <paramref name="entry"/>.</summary>
    void OnPublished(PublishEntry entry, long sequence, bool endOfBatch);
}
