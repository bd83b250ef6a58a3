namespace FastBroker;

/// <summary>
/// A confirm sink that wants to act once per batch rather than once per message: confirmations made by the
/// journaler thread for a ring batch, or by a failover primary's ack reader for one standby ACK, arrive through
/// <see cref="OnPublishConfirmedInBatch"/>, and <see cref="OnConfirmBatchEnd"/> follows once the batch is dispatched,
/// on the same thread. The network server uses it to write one CONFIRM for the batch straight to the socket from that
/// thread, saving its writer a wake-up. Two such threads may call a sink at the same time (each for its own batch).
/// Confirmations made elsewhere (fsynced durability, a failure) still arrive through the
/// <see cref="IPublishConfirmSink"/> methods, with no batch end.
/// </summary>
public interface IPublishConfirmBatchSink : IPublishConfirmSink
{
    /// <summary>
    /// Like <see cref="IPublishConfirmSink.OnPublishConfirmed"/>, on the journaler thread or the ack reader, with a later
    /// <see cref="OnConfirmBatchEnd"/> guaranteed: the sink may hold the outcome until then.
    /// </summary>
    void OnPublishConfirmedInBatch(ulong token, long offset, bool duplicate);

    /// <summary>
    /// The batch is dispatched: called once per batch for each sink that got a confirmation in it. Must
    /// not block and must not throw; on return the sink must have sent the outcomes or handed them to its own thread.
    /// </summary>
    void OnConfirmBatchEnd();
}
