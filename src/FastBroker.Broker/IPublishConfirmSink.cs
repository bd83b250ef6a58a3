namespace FastBroker;

/// <summary>
/// Receives the outcome of messages published through <see cref="PublishClaim"/> — the path a network server uses
/// to confirm pipelined publishes without a task per message. Called on a broker thread (the dispatcher, or a
/// topic's group-commit loop), for each topic in publish order: implementations must be quick, must not block and
/// must not throw (queue the outcome and wake your own writer).
/// </summary>
public interface IPublishConfirmSink
{
    /// <summary>The message identified by <paramref name="token"/> is stored at <paramref name="offset"/>.</summary>
    /// <param name="token">The caller's token given to <see cref="PublishClaim.Add(ReadOnlySpan{byte}, in System.Buffers.ReadOnlySequence{byte}, in System.Buffers.ReadOnlySequence{byte}, in System.Buffers.ReadOnlySequence{byte}, in PublishParameters, IPublishConfirmSink?, ulong)"/>.</param>
    /// <param name="offset">Its topic offset.</param>
    /// <param name="duplicate">True when an idempotent producer retried a message stored earlier: nothing new was written, <paramref name="offset"/> is the original one.</param>
    void OnPublishConfirmed(ulong token, long offset, bool duplicate);

    /// <summary>The message identified by <paramref name="token"/> was not stored.</summary>
    void OnPublishFailed(ulong token, BrokerErrorCode code, string reason);
}
