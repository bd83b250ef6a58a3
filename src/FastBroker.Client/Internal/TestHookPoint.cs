namespace FastBroker.Client.Internal;

/// <summary>Where a client thread calls <c>BrokerClient.TestHook</c> (tests only: <see cref="TestHooks"/>).</summary>
internal enum TestHookPoint : byte
{
    /// <summary>A direct sender (PublishAsync on its own thread) has taken the send role, before it collects anything.</summary>
    DirectSendRoleTaken,

    /// <summary>A direct sender has taken a batch off the send list (lock released), before it encodes it.</summary>
    DirectSendBatchCollected,

    /// <summary>The writer loop has ended a pass and released the send role, before it checks whether the connection ended.</summary>
    WriterPassEnded,

    /// <summary>The writer loop is ending and is about to wait for a direct sender to give the send role back.</summary>
    WriterWaitsForSendRole,

    /// <summary>The heartbeat loop woke for a tick, before it reads the clock and judges the connection.</summary>
    HeartbeatTick,

    /// <summary>ConnectAsync is about to queue its INIT_PRODUCER for the connection it made, before it takes the client's lock.</summary>
    InitProducerQueueing,
}
